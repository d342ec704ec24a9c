"""The JSON API against a real database, Redis, RQ worker and webhook double."""

from __future__ import annotations

import re
from datetime import timedelta, timezone

import pytest
from sqlalchemy import func, select

from publisher import dispatch
from publisher.extensions import db
from publisher.models import ApiToken, Channel, Column, Delivery, Item, Role, User, utcnow
from publisher.security import create_token
from tests.doubles import Answer
from tests.factories import make_channel, make_item, scheduled, webhook_channel

SECRET = "hook-secret-Zq81-never-shown"


def bearer(user: User, name: str = "test") -> dict[str, str]:
    _row, token = create_token(user, name)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def log_in(client, user: User) -> None:
    """A browser session as Flask-Login keeps it (the login page itself is tested elsewhere)."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


def item_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Item.id)))


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    return response.get_json()["error"]


@pytest.fixture
def users(app):
    """admin, editor and reviewer. Unlike conftest's fixture of the same name, no password is hashed
    (argon2 takes half a second): these tests call with tokens and sessions, never the login form."""
    made = {role.value: User(email=f"{role.value}@example.com", role=role, password_hash="-") for role in Role}
    db.session.add_all(made.values())
    db.session.commit()
    return made


@pytest.fixture
def editor(users):
    return bearer(users["editor"])


@pytest.fixture
def admin(users):
    return bearer(users["admin"])


# --- who may call ------------------------------------------------------------------------------

def _revoked(users):
    headers = bearer(users["editor"])
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == users["editor"].id))
    token.revoked_at = utcnow()
    db.session.commit()
    return headers


def _inactive(users):
    headers = bearer(users["editor"])
    users["editor"].active = False
    db.session.commit()
    return headers


@pytest.mark.parametrize("case, status", [
    ("none", 401), ("garbage bearer", 401), ("revoked bearer", 401), ("inactive user's bearer", 401),
    ("bearer", 200), ("session", 200), ("inactive user's session", 401), ("revoked bearer with a session", 401),
])
def test_auth_matrix(client, users, case, status):
    headers: dict[str, str] = {}
    if case == "garbage bearer":
        headers = {"Authorization": "Bearer pub_not-a-real-token"}
    elif case == "revoked bearer":
        headers = _revoked(users)
    elif case == "inactive user's bearer":
        headers = _inactive(users)
    elif case == "bearer":
        headers = bearer(users["editor"])
    elif case == "session":
        log_in(client, users["editor"])
    elif case == "inactive user's session":
        log_in(client, users["editor"])
        users["editor"].active = False
        db.session.commit()
    elif case == "revoked bearer with a session":
        log_in(client, users["editor"])
        headers = _revoked(users)
    response = client.get("/api/items", headers=headers)
    assert response.status_code == status
    assert response.is_json  # never a redirect to the login page
    if status == 401:
        assert response.get_json()["error"]["code"] in {"unauthorized", "invalid_token"}


def test_bearer_records_last_use(client, users):
    headers = bearer(users["reviewer"])
    assert client.get("/api/deliveries", headers=headers).status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken)).last_used_at is not None


ROLE_CASES = [
    # (role, method, path, body, expected status)
    ("reviewer", "GET", "/api/items", None, 200),
    ("reviewer", "GET", "/api/channels", None, 200),
    ("reviewer", "POST", "/api/items", {"title": "x"}, 403),
    ("reviewer", "POST", "/api/deliveries/{delivery}/cancel", None, 403),
    ("reviewer", "POST", "/api/channels", {"name": "c", "type": "feed"}, 403),
    ("editor", "POST", "/api/items", {"title": "x"}, 201),
    ("editor", "PATCH", "/api/items/{item}", {"version": "current", "title": "y"}, 200),
    ("editor", "POST", "/api/deliveries/{delivery}/cancel", None, 200),
    ("editor", "POST", "/api/channels", {"name": "c", "type": "feed"}, 403),
    ("editor", "DELETE", "/api/channels/{channel}", None, 403),
    ("admin", "POST", "/api/items", {"title": "x"}, 201),
    ("admin", "POST", "/api/channels", {"name": "c", "type": "feed"}, 201),
    ("admin", "DELETE", "/api/channels/{spare}", None, 204),
]


@pytest.mark.parametrize("role, method, path, body, status", ROLE_CASES)
def test_roles_matrix(client, users, role, method, path, body, status):
    channel = make_channel("feed")
    spare = make_channel("feed", name="spare")
    (delivery,) = scheduled([channel], utcnow() + timedelta(hours=1))
    before = (item_count(), db.session.scalar(select(func.count(Channel.id))))
    url = path.format(item=delivery.item_id, delivery=delivery.id, channel=channel.id, spare=spare.id)
    if body and "version" in body:
        body = {**body, "version": delivery.item.version}
    response = client.open(url, method=method, json=body, headers=bearer(users[role]))
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 403:
        assert response.get_json()["error"]["code"] == "forbidden"
        db.session.expire_all()
        assert (item_count(), db.session.scalar(select(func.count(Channel.id)))) == before
        assert db.session.get(Delivery, delivery.id).status == "scheduled"


# --- CSRF for browser sessions -----------------------------------------------------------------

def _csrf_from(html: str, pattern: str) -> str:
    match = re.search(pattern, html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_session_writes_need_the_csrf_header_and_token_writes_do_not(make_app, users):
    app = make_app(WTF_CSRF_ENABLED=True)
    browser = app.test_client()
    log_in(browser, users["editor"])

    refused = browser.post("/api/items", json={"title": "no header"})
    assert error_of(refused, 400)["code"] == "csrf_failed"
    assert item_count() == 0

    page = browser.get("/tokens/").get_data(as_text=True)
    meta = _csrf_from(page, r'<meta name="csrf-token" content="([^"]+)"')
    accepted = browser.post("/api/items", json={"title": "with header"}, headers={"X-CSRFToken": meta})
    assert accepted.status_code == 201
    assert browser.get("/api/items").status_code == 200  # reads need no header

    program = app.test_client()
    by_token = program.post("/api/items", json={"title": "by token"}, headers=bearer(users["editor"]))
    assert by_token.status_code == 201
    assert item_count() == 2


# --- items ---------------------------------------------------------------------------------------

def test_create_and_schedule_with_an_offset(client, editor, users):
    channel = make_channel("feed")
    response = client.post("/api/items", headers=editor, json={
        "title": "第13期", "body": "Hello", "format": "event", "origin": "ugc",
        "event_start": "2030-01-05T19:30:00+08:00", "event_place": "Room 3",
        "channel_ids": [channel.id], "due_at": "2030-01-01T20:00:00+08:00",
    })
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/items/{body['id']}"
    assert body["status"] == "scheduled" and body["format"] == "event" and body["origin"] == "ugc"
    assert body["author_id"] == users["editor"].id
    assert body["next_due_at"] == "2030-01-01T12:00:00+00:00"
    (delivery,) = body["deliveries"]
    assert delivery["channel_id"] == channel.id and delivery["status"] == "scheduled"
    assert delivery["due_at"] == "2030-01-01T12:00:00+00:00"
    row = db.session.get(Delivery, delivery["id"])
    assert row.due_at.isoformat() == "2030-01-01T12:00:00+00:00"
    assert client.get(response.headers["Location"], headers=editor).get_json() == body


def test_naive_due_at_is_refused_and_nothing_is_created(client, editor):
    channel = make_channel("feed")
    response = client.post("/api/items", headers=editor, json={
        "title": "", "channel_ids": [channel.id], "due_at": "2030-01-01T20:00:00"})
    err = error_of(response, 400)
    assert err["code"] == "validation_error"
    assert "offset" in err["fields"]["due_at"]
    assert "title" in err["fields"]  # every problem at once
    assert item_count() == 0
    assert db.session.scalar(select(func.count(Delivery.id))) == 0


@pytest.mark.parametrize("body, field", [
    ({"title": "x", "channel_ids": [999999]}, "channel_ids"),  # no such channel: the item is rolled back
    ({"title": "x", "channel_ids": [], "due_at": "2030-01-01T00:00:00Z"}, "channel_ids"),
    ({"title": "x", "due_at": "2030-01-01T00:00:00Z"}, "channel_ids"),
    ({"title": "x", "channel_ids": ["1"]}, "channel_ids"),
    ({"title": "x", "channel_ids": [1], "due_at": "tomorrow"}, "due_at"),
    ({"title": "x", "column_id": 999999}, "column_id"),
    ({"title": 12}, "title"),
    ({"title": "x", "format": "poem"}, "format"),
    ({"title": "x", "status": "published"}, "status"),
])
def test_bad_items_change_nothing(client, editor, body, field):
    response = client.post("/api/items", headers=editor, json=body)
    assert field in error_of(response, 400)["fields"]
    assert item_count() == 0


def test_past_due_at_is_refused(client, editor):
    channel = make_channel("feed")
    past = (utcnow() - timedelta(hours=1)).isoformat()
    response = client.post("/api/items", headers=editor, json={"title": "x", "channel_ids": [channel.id],
                                                                 "due_at": past})
    assert "due_at" in error_of(response, 400)["fields"]
    assert item_count() == 0


def test_body_must_be_json(client, editor):
    assert error_of(client.post("/api/items", headers=editor, data="title=x"), 415)["code"] == \
        "unsupported_media_type"
    response = client.post("/api/items", headers={**editor, "Content-Type": "application/json"}, data="{nope")
    assert error_of(response, 400)["code"] == "bad_request"
    assert error_of(client.post("/api/items", headers=editor, json=[1]), 400)["code"] == "bad_request"


def test_patch_with_a_stale_version_is_a_conflict_and_changes_nothing(client, editor):
    created = client.post("/api/items", headers=editor, json={"title": "A", "body": "one"}).get_json()
    assert created["version"] == 1
    first = client.patch(f"/api/items/{created['id']}", headers=editor, json={"version": 1, "title": "B"})
    assert first.status_code == 200
    assert first.get_json()["version"] == 2 and first.get_json()["body"] == "one"

    stale = client.patch(f"/api/items/{created['id']}", headers=editor,
                         json={"version": 1, "title": "C", "body": "two"})
    err = error_of(stale, 409)
    assert err["code"] == "stale_version" and "version" in err["fields"]
    now = client.get(f"/api/items/{created['id']}", headers=editor).get_json()
    assert (now["title"], now["body"], now["version"]) == ("B", "one", 2)

    assert "version" in error_of(client.patch(f"/api/items/{created['id']}", headers=editor,
                                              json={"title": "D"}), 400)["fields"]
    assert "title" in error_of(client.patch(f"/api/items/{created['id']}", headers=editor,
                                            json={"version": 2, "title": " "}), 400)["fields"]
    db.session.expire_all()
    assert db.session.get(Item, created["id"]).title == "B"


def test_patch_can_clear_the_column(client, editor):
    column = Column(name="周刊", slug="weekly")
    db.session.add(column)
    db.session.commit()
    created = client.post("/api/items", headers=editor, json={"title": "A", "column_id": column.id}).get_json()
    assert created["column_id"] == column.id
    patched = client.patch(f"/api/items/{created['id']}", headers=editor, json={"version": 1, "column_id": None})
    assert patched.get_json()["column_id"] is None


def test_delete_only_unscheduled_drafts(client, editor):
    draft = client.post("/api/items", headers=editor, json={"title": "draft"}).get_json()
    (delivery,) = scheduled([make_channel("feed")], utcnow() + timedelta(hours=1))
    refused = client.delete(f"/api/items/{delivery.item_id}", headers=editor)
    assert error_of(refused, 409)["code"] == "conflict"
    assert item_count() == 2
    assert client.delete(f"/api/items/{draft['id']}", headers=editor).status_code == 204
    assert error_of(client.get(f"/api/items/{draft['id']}", headers=editor), 404)["code"] == "not_found"


def test_schedule_on_more_channels(client, editor):
    first, second = make_channel("feed", name="one"), make_channel("feed", name="two")
    item = client.post("/api/items", headers=editor, json={"title": "x", "channel_ids": [first.id],
                                                           "due_at": "2030-05-01T08:00:00Z"}).get_json()
    response = client.post(f"/api/items/{item['id']}/deliveries", headers=editor,
                           json={"channel_ids": [second.id], "due_at": "2030-05-02T08:00:00+02:00"})
    assert response.status_code == 201
    (added,) = response.get_json()["data"]
    assert added["channel_id"] == second.id and added["due_at"] == "2030-05-02T06:00:00+00:00"
    listed = client.get(f"/api/items/{item['id']}/deliveries", headers=editor).get_json()["data"]
    assert [d["channel_id"] for d in listed] == [first.id, second.id]
    missing = client.post(f"/api/items/{item['id']}/deliveries", headers=editor, json={})
    assert "channel_ids" in error_of(missing, 400)["fields"]
    second.enabled = False
    db.session.commit()
    off = client.post(f"/api/items/{item['id']}/deliveries", headers=editor, json={"channel_ids": [second.id]})
    assert "channel_ids" in error_of(off, 400)["fields"]
    assert db.session.scalar(select(func.count(Delivery.id))) == 2


def test_item_filters(client, editor):
    feed = make_channel("feed")
    soon = scheduled([feed], utcnow() + timedelta(hours=1), title="soon")[0].item_id
    late = scheduled([feed], utcnow() + timedelta(days=3), title="late", origin="ugc", format="video")[0].item_id
    draft = make_item(title="draft").id

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/items?{query}", headers=editor)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [i["id"] for i in response.get_json()["data"]]

    assert ids("") == [draft, late, soon]
    assert ids("status=draft") == [draft]
    assert ids("status=scheduled") == [late, soon]
    assert ids("origin=ugc") == [late]
    assert ids("format=video") == [late]
    tomorrow = (utcnow() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"to={tomorrow}") == [soon]
    assert ids(f"from={tomorrow}") == [late]
    in_beijing = (utcnow() + timedelta(days=1)).astimezone(timezone(timedelta(hours=8))).isoformat()
    assert ids(f"from={in_beijing}") == [late]  # the unencoded + of the offset arrives as a space
    assert "from" in error_of(client.get("/api/items?from=2030-01-01T00:00:00", headers=editor), 400)["fields"]
    assert "status" in error_of(client.get("/api/items?status=gone", headers=editor), 400)["fields"]


def test_pagination(client, editor):
    made = [make_item(title=f"item {n}").id for n in range(5)]
    newest_first = list(reversed(made))
    first = client.get("/api/items?limit=2", headers=editor).get_json()
    assert [i["id"] for i in first["data"]] == newest_first[:2]
    cursor = first["pagination"]["next_cursor"]
    second = client.get(f"/api/items?limit=2&cursor={cursor}", headers=editor).get_json()
    assert [i["id"] for i in second["data"]] == newest_first[2:4]
    third = client.get(f"/api/items?limit=2&cursor={second['pagination']['next_cursor']}", headers=editor).get_json()
    assert [i["id"] for i in third["data"]] == newest_first[4:]
    assert third["pagination"]["next_cursor"] is None

    page2 = client.get("/api/items?limit=2&page=2", headers=editor).get_json()
    assert [i["id"] for i in page2["data"]] == newest_first[2:4]
    assert page2["pagination"] == {"limit": 2, "next_cursor": str(newest_first[3]), "page": 2, "next_page": 3}
    page3 = client.get("/api/items?limit=2&page=3", headers=editor).get_json()
    assert page3["pagination"]["next_page"] is None

    assert "limit" in error_of(client.get("/api/items?limit=201", headers=editor), 400)["fields"]
    assert len(client.get("/api/items?limit=200", headers=editor).get_json()["data"]) == 5
    assert "page" in error_of(client.get(f"/api/items?cursor={cursor}&page=2", headers=editor), 400)["fields"]
    assert "cursor" in error_of(client.get("/api/items?cursor=abc", headers=editor), 400)["fields"]


# --- channels ----------------------------------------------------------------------------------

def test_channel_secrets_never_leave(client, admin, editor, webhook_double):
    created = client.post("/api/channels", headers=admin, json={
        "name": "hook", "type": "webhook", "config": {"url": f"{webhook_double.url}/hook", "secret": SECRET}})
    assert created.status_code == 201
    channel = created.get_json()
    assert channel["config"] == {"url": f"{webhook_double.url}/hook"} and channel["secrets_set"] == ["secret"]
    assert created.headers["Location"] == f"/api/channels/{channel['id']}"
    item = client.post("/api/items", headers=editor, json={"title": "x", "channel_ids": [channel["id"]]})
    responses = [
        created, item,
        client.get("/api/channels", headers=editor),
        client.get(f"/api/channels/{channel['id']}", headers=editor),
        client.patch(f"/api/channels/{channel['id']}", headers=admin, json={"name": "renamed",
                                                                              "config": {"timeout": 3}}),
        client.get("/api/channel-types", headers=editor),
        client.get(f"/api/items/{item.get_json()['id']}", headers=editor),
        client.get("/api/deliveries", headers=editor),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert SECRET not in response.get_data(as_text=True)
    db.session.expire_all()
    stored = db.session.get(Channel, channel["id"])
    assert stored.name == "renamed" and stored.config["secret"] == SECRET and stored.config["timeout"] == 3
    assert SECRET not in stored.config_encrypted  # encrypted at rest

    replaced = client.patch(f"/api/channels/{channel['id']}", headers=admin, json={"config": {"secret": "new-one"}})
    assert "new-one" not in replaced.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Channel, channel["id"]).config["secret"] == "new-one"


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "type": "carrier-pigeon"}, "type"),
    ({"name": "", "type": "feed"}, "name"),
    ({"name": "x", "type": "webhook", "config": {"secret": "s"}}, "config.url"),
    ({"name": "x", "type": "webhook", "config": {"url": "http://h/", "secret": "s", "colour": "red"}},
     "config.colour"),
    ({"name": "x", "type": "webhook", "config": {"url": "http://h/", "secret": "s", "timeout": "10"}},
     "config.timeout"),
    ({"name": "x", "type": "feed", "enabled": "yes"}, "enabled"),
])
def test_bad_channels_are_refused(client, admin, body, field):
    assert field in error_of(client.post("/api/channels", headers=admin, json=body), 400)["fields"]
    assert db.session.scalar(select(func.count(Channel.id))) == 0


def test_removing_a_required_secret_is_refused(client, admin, webhook_double):
    channel = webhook_channel(webhook_double)
    response = client.patch(f"/api/channels/{channel.id}", headers=admin, json={"config": {"secret": None}})
    assert "config.secret" in error_of(response, 400)["fields"]
    db.session.expire_all()
    assert db.session.get(Channel, channel.id).config["secret"] == webhook_double.secret


def test_a_channel_with_deliveries_is_not_deleted(client, admin):
    used = make_channel("feed")
    scheduled([used], utcnow() + timedelta(hours=1))
    assert error_of(client.delete(f"/api/channels/{used.id}", headers=admin), 409)["code"] == "conflict"
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Channel.id))) == 1
    assert error_of(client.delete("/api/channels/999999", headers=admin), 404)["code"] == "not_found"


def test_channel_types_describe_the_adapters(client, editor):
    types = {t["type"]: t for t in client.get("/api/channel-types", headers=editor).get_json()["data"]}
    hook = types["webhook"]
    assert hook["idempotent"] is True
    assert {f["name"]: f["secret"] for f in hook["fields"]} == {"url": False, "secret": True, "timeout": False}
    assert hook["limits"]["markup"] == "json"


# --- deliveries ----------------------------------------------------------------------------------

def test_delivery_actions_and_their_conflicts(client, editor, drain, webhook_double):
    webhook_double.answer(Answer(400, "title rejected"))
    (failed,) = scheduled([webhook_channel(webhook_double)])
    dispatch.tick()
    drain()
    assert client.get(f"/api/deliveries/{failed.id}", headers=editor).get_json()["status"] == "failed"

    (waiting,) = scheduled([make_channel("feed")], utcnow() + timedelta(hours=1))
    for action in ("retry", "mark-sent"):
        err = error_of(client.post(f"/api/deliveries/{waiting.id}/{action}", headers=editor), 409)
        assert err["code"] == "invalid_state" and "scheduled" in err["message"]
    cancelled = client.post(f"/api/deliveries/{waiting.id}/cancel", headers=editor)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert [e["reason"] for e in cancelled.get_json()["events"]] == ["scheduled", "cancelled"]
    assert error_of(client.post(f"/api/deliveries/{waiting.id}/cancel", headers=editor), 409)["code"] == \
        "invalid_state"

    retried = client.post(f"/api/deliveries/{failed.id}/retry", headers=editor).get_json()
    assert retried["status"] == "scheduled" and retried["events"][-1]["reason"] == "manual"
    dispatch.tick()
    drain()
    done = client.get(f"/api/deliveries/{failed.id}", headers=editor).get_json()
    assert done["status"] == "sent"
    assert [e["status"] for e in done["events"]] == [
        "scheduled", "sending", "failed", "scheduled", "sending", "sent"]
    assert error_of(client.post(f"/api/deliveries/{failed.id}/mark-sent", headers=editor), 409)["code"] == \
        "invalid_state"
    assert error_of(client.post("/api/deliveries/999999/cancel", headers=editor), 404)["code"] == "not_found"

    (claimed,) = scheduled([make_channel("feed")])  # due now
    dispatch.tick()  # claimed: its job waits for a worker
    listed = client.get("/api/deliveries?status=queued", headers=editor).get_json()["data"]
    assert [(d["id"], d["status"]) for d in listed] == [(claimed.id, "queued")]
    err = error_of(client.post(f"/api/deliveries/{claimed.id}/cancel", headers=editor), 409)
    assert err["code"] == "invalid_state" and "queued" in err["message"]  # it is on its way
    drain()
    assert client.get(f"/api/deliveries/{claimed.id}", headers=editor).get_json()["status"] == "sent"


def test_mark_sent_publishes_the_item(client, editor, drain, webhook_double):
    webhook_double.answer(Answer(400, "no"))
    (d,) = scheduled([webhook_channel(webhook_double)])
    dispatch.tick()
    drain()
    marked = client.post(f"/api/deliveries/{d.id}/mark-sent", headers=editor).get_json()
    assert marked["status"] == "sent" and marked["sent_at"].endswith("+00:00")
    assert client.get(f"/api/items/{d.item_id}", headers=editor).get_json()["status"] == "published"


def test_delivery_list_filters_and_pages(client, editor):
    one, two = make_channel("feed", name="one"), make_channel("feed", name="two")
    a = scheduled([one, two], utcnow() + timedelta(hours=1))
    b = scheduled([one], utcnow() + timedelta(hours=2))
    dispatch.cancel(b[0])
    db.session.commit()

    def ids(query: str) -> list[int]:
        return [d["id"] for d in client.get(f"/api/deliveries?{query}", headers=editor).get_json()["data"]]

    assert ids("") == [b[0].id, a[1].id, a[0].id]
    assert ids(f"channel_id={one.id}") == [b[0].id, a[0].id]
    assert ids(f"item_id={a[0].item_id}") == [a[1].id, a[0].id]
    assert ids("status=cancelled") == [b[0].id]
    page = client.get("/api/deliveries?limit=1&page=3", headers=editor).get_json()
    assert [d["id"] for d in page["data"]] == [a[0].id] and page["pagination"]["next_page"] is None
    assert "status" in error_of(client.get("/api/deliveries?status=lost", headers=editor), 400)["fields"]


# --- the whole way -------------------------------------------------------------------------------

def test_post_an_item_and_it_arrives_once(client, editor, drain, webhook_double):
    channel = webhook_channel(webhook_double)
    now = utcnow().isoformat()
    created = client.post("/api/items", headers=editor, json={
        "title": "Launch", "body": "**Hello**", "channel_ids": [channel.id], "due_at": now})
    assert created.status_code == 201
    item_id = created.get_json()["id"]
    dispatch.tick()
    drain()
    (delivery,) = client.get(f"/api/items/{item_id}/deliveries", headers=editor).get_json()["data"]
    assert delivery["status"] == "sent" and delivery["sent_at"].endswith("+00:00")
    assert len(webhook_double.posts) == 1 and list(webhook_double.posts.values()) == [1]
    assert webhook_double.requests[0].json()["title"] == "Launch"
    item = client.get(f"/api/items/{item_id}", headers=editor).get_json()
    assert item["status"] == "published" and item["next_due_at"] is None

    # Editing a published item never sends it again.
    edited = client.patch(f"/api/items/{item_id}", headers=editor, json={"version": item["version"],
                                                                         "title": "Launch (fixed)"})
    assert edited.status_code == 200
    dispatch.tick()
    drain()
    assert len(webhook_double.requests) == 1
    assert client.get(f"/api/deliveries/{delivery['id']}", headers=editor).get_json()["status"] == "sent"


# --- errors outside the routes, and rate limits ----------------------------------------------

def test_unknown_addresses_and_methods_answer_json(client, editor):
    assert error_of(client.get("/api/nothing-here", headers=editor), 404)["code"] == "not_found"
    assert error_of(client.put("/api/items", headers=editor, json={}), 405)["code"] == "method_not_allowed"
    assert error_of(client.get("/api/items/999999", headers=editor), 404)["code"] == "not_found"


def test_rate_limit_answers_429_json(make_app, users):
    app = make_app(RATELIMIT_ENABLED=True, API_RATE_LIMIT="2 per minute")
    headers = bearer(users["reviewer"])
    client = app.test_client()
    assert [client.get("/api/items", headers=headers).status_code for _ in range(2)] == [200, 200]
    assert error_of(client.get("/api/items", headers=headers), 429)["code"] == "rate_limited"
    other = bearer(users["editor"])  # the budget is per user
    assert client.get("/api/items", headers=other).status_code == 200
