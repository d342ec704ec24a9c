"""/api/columns and /api/slots: CRUD, roles, CSRF, slot ranges, filling a slot, and every answer
checked against the OpenAPI document."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from publisher import schedule
from publisher.extensions import db
from publisher.models import Column, Item, Role, User, utcnow
from publisher.security import create_token
from tests.conftest import login
from tests.factories import make_channel

if TYPE_CHECKING:  # test_openapi imports this module: no import cycle at run time
    from tests.test_openapi import Recorder

RULE = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=20;BYMINUTE=0;BYSECOND=0"


def _bearer(role: Role) -> dict:
    user = db.session.query(User).filter_by(role=role).first()
    _row, token = create_token(user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(client, users):
    from tests.test_openapi import Recorder

    doc = client.get("/api/openapi.json").get_json()
    return Recorder(client, doc)


def exercise_the_api(api: Recorder, admin: dict, editor: dict, reviewer: dict, channel_id: int) -> None:
    """Every column and slot operation, each answer checked against the document (test_openapi calls it too)."""
    column = api.call("post", "/api/columns", 201, editor, json={
        "name": "Tuesday Talk", "slug": "tuesday-talk", "color": "#AA3300", "timezone": "Europe/Berlin",
        "cadence": RULE, "cadence_start": (utcnow() - timedelta(days=1)).isoformat(), "first_issue": 12,
        "themes": ["Growth", "Retention"], "hashtags": ["#community", "weekly"], "slots_ahead": 2,
        "default_channel_ids": [channel_id]}).get_json()
    assert (column["color"], column["themes"], column["hashtags"]) == ("#aa3300", ["Growth", "Retention"],
                                                                       ["community", "weekly"])
    assert column["default_channel_ids"] == [channel_id] and "ics_token" not in column
    column_id = column["id"]
    assert column_id in [c["id"] for c in api.call("get", "/api/columns", 200, reviewer).get_json()["data"]]
    api.call("get", "/api/columns/{column_id}", 200, reviewer, column_id=column_id)
    changed = api.call("patch", "/api/columns/{column_id}", 200, editor, column_id=column_id,
                       json={"slug": "tuesday-talk", "themes": "A\nB\nC", "active": True}).get_json()
    assert changed["themes"] == ["A", "B", "C"]

    slots = api.call("get", "/api/columns/{column_id}/slots", 200, reviewer, column_id=column_id,
                     query="?start=" + utcnow().isoformat().replace("+", "%2B")).get_json()["data"]
    assert 30 <= len(slots) <= 32 and all(s["open"] and s["item_id"] is None for s in slots)
    assert [s["issue_number"] for s in slots[:4]] == [12, 13, 14, 15]
    assert [s["theme"] for s in slots[:4]] == ["A", "B", "C", "A"]
    item = api.call("post", "/api/columns/{column_id}/slots", 201, editor, column_id=column_id,
                    json={"at": slots[1]["at"]}).get_json()
    assert item["column_id"] == column_id and "No. 13" in item["title"]
    api.call("post", "/api/columns/{column_id}/slots", 409, editor, column_id=column_id, json={"at": slots[1]["at"]})
    api.call("post", "/api/columns/{column_id}/slots", 400, editor, column_id=column_id,
             json={"at": "2031-01-01T00:01:00+00:00"})
    api.call("post", "/api/columns/{column_id}/slots", 403, reviewer, column_id=column_id, json={"at": slots[0]["at"]})
    everything = api.call("get", "/api/slots", 200, reviewer, query=f"?column_id={column_id}").get_json()["data"]
    filled = [s for s in everything if not s["open"]]
    assert [(s["at"], s["item_id"]) for s in filled] == [(slots[1]["at"], item["id"])]

    # Deleting is refused while an item belongs to the column.
    api.call("delete", "/api/columns/{column_id}", 409, editor, column_id=column_id)
    empty = api.call("post", "/api/columns", 201, admin, json={"name": "Empty", "slug": "empty"}).get_json()
    api.call("delete", "/api/columns/{column_id}", 204, editor, column_id=empty["id"])
    api.call("get", "/api/columns/{column_id}", 404, reviewer, column_id=empty["id"])
    api.call("post", "/api/columns", 403, reviewer, json={"name": "X", "slug": "x"})
    api.call("post", "/api/columns", 415, editor, data="name=x")


def test_columns_crud_slots_and_fill_match_the_document(api, users):
    channel = make_channel("feed", name="News", title="News")
    exercise_the_api(api, _bearer(Role.ADMIN), _bearer(Role.EDITOR), _bearer(Role.REVIEWER), channel.id)
    operations = {(m, p) for p, ops in api.doc["paths"].items() for m in ops
                  if p.startswith(("/api/columns", "/api/slots"))}
    assert {(m, p) for m, p, s in api.seen if s.startswith("2")} == operations


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "X", "slug": "all"}, "slug"),
    ({"name": "X", "slug": "Bad Slug"}, "slug"),
    ({"name": "X", "slug": "x", "color": "blue"}, "color"),
    ({"name": "X", "slug": "x", "timezone": "Nowhere/Here"}, "timezone"),
    ({"name": "X", "slug": "x", "cadence": "FREQ=HOURLY"}, "cadence"),
    ({"name": "X", "slug": "x", "cadence_start": "2030-01-01T00:00:00"}, "cadence_start"),
    ({"name": "X", "slug": "x", "slots_ahead": 0}, "slots_ahead"),
    ({"name": "X", "slug": "x", "default_channel_ids": [999]}, "default_channel_ids"),
    ({"name": "X", "slug": "x", "owner_id": 999}, "owner_id"),
    ({"name": "X", "slug": "x", "colour": "#000000"}, "colour"),
    ({"slug": "x"}, "name"),
])
def test_create_refuses_bad_values(api, body, field):
    response = api.call("post", "/api/columns", 400, _bearer(Role.EDITOR), json=body)
    assert field in response.get_json()["error"]["fields"]
    assert db.session.query(Column).count() == 0


def test_slot_ranges_are_checked(api):
    reviewer = _bearer(Role.REVIEWER)
    column = Column(name="C", slug="c", cadence=RULE, timezone="UTC", cadence_start=utcnow())
    db.session.add(column)
    db.session.commit()
    start = utcnow().replace(microsecond=0)
    for query, field in ((f"?start={start:%Y-%m-%dT%H:%M:%SZ}&end={start + timedelta(days=401):%Y-%m-%dT%H:%M:%SZ}",
                          "end"),
                         (f"?start={start:%Y-%m-%dT%H:%M:%SZ}&end={start - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
                          "end"),
                         ("?start=yesterday", "start"),
                         ("?start=2030-01-01T00:00:00", "start")):
        response = api.call("get", "/api/slots", 400, reviewer, query=query)
        assert field in response.get_json()["error"]["fields"], query
    ok = api.call("get", "/api/columns/{column_id}/slots", 200, reviewer, column_id=column.id,
                  query=f"?start={start:%Y-%m-%dT%H:%M:%SZ}&end={start + timedelta(days=400):%Y-%m-%dT%H:%M:%SZ}")
    assert 399 <= len(ok.get_json()["data"]) <= 401
    api.call("get", "/api/columns/{column_id}/slots", 404, reviewer, column_id=999)


def test_session_writes_need_the_csrf_header(make_app, users):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        db.session.add(Column(name="C", slug="c", cadence=RULE, timezone="UTC", cadence_start=utcnow()))
        db.session.commit()
        slot = schedule.next_slots(db.session.query(Column).one(), 1)[0]
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)[1]
    client.post("/login", data={"email": "editor@example.com", "password": "password-123", "csrf_token": token})
    body = {"at": slot.at.isoformat()}
    refused = client.post("/api/columns/1/slots", json=body)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/columns").get_data(as_text=True))[1]
    assert client.post("/api/columns/1/slots", json=body, headers={"X-CSRFToken": meta}).status_code == 201
    with app.app_context():
        assert db.session.query(Item).count() == 1


def test_web_login_session_reads(client, users):
    login(client, "reviewer@example.com")
    assert client.get("/api/columns").get_json() == {"data": []}
