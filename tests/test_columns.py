"""Columns pages: roles, the cadence builder (every case and the raw rule), refused input that
changes nothing, slots with numbers and themes, filling a slot, and the dashboard's gap warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from publisher import schedule
from publisher.extensions import db
from publisher.models import Column, Item, ItemStatus, utcnow
from publisher.web.columns import describe_cadence, parse_rule
from tests.conftest import login as _login
from tests.factories import make_channel


def login(client, email: str):
    client.post("/logout")  # switch users within a test
    return _login(client, email)


EVERY_DAY = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=20;BYMINUTE=0;BYSECOND=0"


def make_column(slug: str = "tuesday-talk", cadence: str = EVERY_DAY, **fields) -> Column:
    column = Column(name=fields.pop("name", "Tuesday Talk"), slug=slug, cadence=cadence, timezone="Asia/Shanghai",
                    cadence_start=utcnow() - timedelta(days=1), **fields)
    db.session.add(column)
    db.session.commit()
    return column


def form(**overrides) -> dict:
    data = {"name": "Tuesday Talk", "slug": "tuesday-talk", "color": "#aa3300", "description": "Talks",
            "intro": "Hello!", "signoff": "See you", "hashtags": "community weekly", "cover_id": "",
            "timezone": "Asia/Shanghai", "mode": "weekly", "days": ["TU"], "interval": "2", "nth": "1",
            "month_day": "MO", "at": "20:00", "raw": "", "cadence_start": "2030-01-01", "first_issue": "12",
            "themes": "Growth\nRetention", "slots_ahead": "3", "owner_id": "", "active": "y"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def column_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Column))


def test_pages_by_role(client, users):
    column = make_column()
    assert client.get("/columns").status_code == 302  # login first
    login(client, "reviewer@example.com")
    page = client.get("/columns")
    assert page.status_code == 200 and "Tuesday Talk" in page.get_data(as_text=True)
    assert "New column" not in page.get_data(as_text=True)
    assert client.get(f"/columns/{column.slug}").status_code == 200
    assert client.get("/columns/new").status_code == 403
    assert client.post("/columns/new", data=form(slug="other")).status_code == 403
    assert client.get(f"/columns/{column.slug}/edit").status_code == 403
    assert client.post(f"/columns/{column.slug}/fill", data={"at": "2030-01-01T12:00:00+00:00"}).status_code == 403
    assert column_count() == 1
    for email in ("editor@example.com", "admin@example.com"):
        login(client, email)
        assert client.get("/columns/new").status_code == 200
        assert client.get(f"/columns/{column.slug}/edit").status_code == 200


@pytest.mark.parametrize(("overrides", "rule"), [
    ({"mode": "none"}, ""),
    ({"mode": "weekly", "days": ["TU", "TH"], "at": "20:30"},
     "FREQ=WEEKLY;BYDAY=TU,TH;BYHOUR=20;BYMINUTE=30;BYSECOND=0"),
    ({"mode": "every_n_weeks", "days": ["FR"], "interval": "2", "at": "09:05"},
     "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=9;BYMINUTE=5;BYSECOND=0"),
    ({"mode": "monthly", "nth": "-1", "month_day": "SA", "at": "10:00"},
     "FREQ=MONTHLY;BYDAY=-1SA;BYHOUR=10;BYMINUTE=0;BYSECOND=0"),
    ({"mode": "raw", "raw": "FREQ=DAILY;INTERVAL=3;BYHOUR=8;BYMINUTE=0"}, "FREQ=DAILY;INTERVAL=3;BYHOUR=8;BYMINUTE=0"),
])
def test_create_with_each_cadence_case(client, users, overrides, rule):
    channel = make_channel("feed", name="News", title="News")
    login(client, "editor@example.com")
    response = client.post("/columns/new", data=form(channel_ids=[str(channel.id)], owner_id=str(users["editor"].id),
                                                     **overrides))
    assert response.status_code == 302 and response.headers["Location"].endswith("/columns/tuesday-talk")
    column = db.session.scalar(select(Column).where(Column.slug == "tuesday-talk"))
    assert column.cadence == rule
    assert (column.name, column.color, column.intro, column.signoff) == ("Tuesday Talk", "#aa3300", "Hello!", "See you")
    assert column.hashtag_list == ["community", "weekly"] and column.theme_list == ["Growth", "Retention"]
    assert (column.first_issue, column.slots_ahead, column.timezone, column.active) == (12, 3, "Asia/Shanghai", True)
    assert [c.id for c in column.default_channels] == [channel.id] and column.owner_id == users["editor"].id
    # The start is the date's midnight in the column's timezone.
    assert column.cadence_start == datetime(2029, 12, 31, 16, 0, tzinfo=UTC)
    page = client.get("/columns/tuesday-talk").get_data(as_text=True)
    assert describe_cadence(rule, "Asia/Shanghai") in page


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"mode": "raw", "raw": "FREQ=SECONDLY"}, "raw", "repeats daily, weekly, monthly or yearly"),
    ({"mode": "raw", "raw": "FREQ=WEEKLY;BYDAY=XX"}, "raw", "not a valid repeat rule"),
    ({"mode": "weekly", "days": []}, "days", "Choose at least one day"),
    ({"mode": "weekly", "at": "25:00"}, "at", "HH:MM"),
    ({"mode": "every_n_weeks", "interval": "1"}, "interval", "from 2 to 52"),
    ({"slug": "Tuesday Talk"}, "slug", "lowercase letters, digits and hyphens"),
    ({"slug": "all"}, "slug", "reserved"),
    ({"color": "red"}, "color", "#rrggbb"),
    ({"color": "#abc"}, "color", "#rrggbb"),
    ({"timezone": "Mars/Olympus"}, "timezone", "Unknown timezone"),
    ({"slots_ahead": "21"}, "slots_ahead", "from 1 to 20"),
    ({"name": ""}, "name", "required"),
    ({"cadence_start": "tomorrow"}, "cadence_start", "YYYY-MM-DD"),
])
def test_bad_input_changes_nothing(client, users, overrides, field, message):
    login(client, "editor@example.com")
    response = client.post("/columns/new", data=form(**overrides))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page or field in ("days", "mode")
    assert message in page
    assert column_count() == 0
    # Editing with the same bad value leaves the stored column as it was.
    column = make_column(slug="kept")
    response = client.post("/columns/kept/edit", data=form(**{"slug": "kept", **overrides}))
    assert response.status_code == 400
    db.session.expire_all()
    assert (column.name, column.slug, column.cadence, column.timezone) == ("Tuesday Talk", "kept", EVERY_DAY,
                                                                            "Asia/Shanghai")


def test_duplicate_slug_is_refused(client, users):
    make_column(slug="taken")
    login(client, "editor@example.com")
    response = client.post("/columns/new", data=form(slug="taken"))
    assert response.status_code == 400 and "Another column already uses this slug" in response.get_data(as_text=True)
    assert column_count() == 1


@pytest.mark.parametrize(("rule", "expected"), [
    ("FREQ=WEEKLY;BYDAY=TU;BYHOUR=20;BYMINUTE=0;BYSECOND=0", {"mode": "weekly", "days": ["TU"], "at": "20:00"}),
    ("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR;BYHOUR=7;BYMINUTE=45",
     {"mode": "every_n_weeks", "days": ["MO", "FR"], "at": "07:45", "interval": 3}),
    ("FREQ=MONTHLY;BYDAY=2WE;BYHOUR=19;BYMINUTE=30;BYSECOND=0",
     {"mode": "monthly", "nth": 2, "day": "WE", "at": "19:30"}),
    ("FREQ=DAILY;BYHOUR=8;BYMINUTE=0", {"mode": "raw", "raw": "FREQ=DAILY;BYHOUR=8;BYMINUTE=0"}),
    ("FREQ=WEEKLY;BYDAY=TU", {"mode": "raw", "raw": "FREQ=WEEKLY;BYDAY=TU"}),
    ("", {"mode": "none"}),
])
def test_parse_rule_recognises_the_builder_cases(rule, expected):
    assert parse_rule(rule) == expected


def test_describe_cadence(app):
    assert describe_cadence(schedule.weekly_rule(["TU"], 20, 0), "Asia/Shanghai") == \
        "Every Tuesday at 20:00 (Asia/Shanghai)"
    assert describe_cadence(schedule.weekly_rule(["MO", "TH"], 9, 5, 2), "UTC") == \
        "Every 2 weeks on Monday and Thursday at 09:05 (UTC)"
    assert describe_cadence(schedule.monthly_rule(-1, "FR", 18, 0), "Europe/Berlin") == \
        "On the last Friday of every month at 18:00 (Europe/Berlin)"
    assert describe_cadence("FREQ=DAILY;BYHOUR=8", "UTC") == "Repeat rule FREQ=DAILY;BYHOUR=8 (UTC)"


def test_edit_prefills_the_builder(client, users):
    make_column(slug="monthly", cadence=schedule.monthly_rule(3, "WE", 19, 30))
    make_column(slug="raw", cadence="FREQ=DAILY;BYHOUR=8;BYMINUTE=0")
    login(client, "editor@example.com")
    page = client.get("/columns/monthly/edit").get_data(as_text=True)
    assert 'checked id="mode-3" name="mode" type="radio" value="monthly"' in page.replace("  ", " ") or \
        _checked(page, "mode", "monthly")
    assert '<option selected value="3">' in page and '<option selected value="WE">' in page
    assert 'value="19:30"' in page
    page = client.get("/columns/raw/edit").get_data(as_text=True)
    assert _checked(page, "mode", "raw") and 'value="FREQ=DAILY;BYHOUR=8;BYMINUTE=0"' in page
    # Saving the pre-filled form unchanged keeps the rule.
    weekly = make_column(slug="weekly", cadence=schedule.weekly_rule(["TU", "SA"], 20, 0))
    page = client.get("/columns/weekly/edit").get_data(as_text=True)
    assert _checked(page, "mode", "weekly") and _checked(page, "days", "TU") and _checked(page, "days", "SA")
    assert not _checked(page, "days", "MO")
    response = client.post("/columns/weekly/edit", data=form(slug="weekly", days=["TU", "SA"], themes="New theme"))
    assert response.status_code == 302
    db.session.expire_all()
    assert weekly.cadence == schedule.weekly_rule(["TU", "SA"], 20, 0) and weekly.theme_list == ["New theme"]


def _checked(page: str, name: str, value: str) -> bool:
    import re

    return any("checked" in tag for tag in re.findall(rf'<input[^>]*name="{name}"[^>]*value="{value}"[^>]*>', page))


def test_slots_show_numbers_and_themes_and_fill(client, users):
    column = make_column(first_issue=12, themes="Growth\nRetention", slots_ahead=2)
    login(client, "editor@example.com")
    page = client.get("/columns/tuesday-talk").get_data(as_text=True)
    first, second = schedule.next_slots(column, 2)
    assert "No. 12" in page and "No. 13" in page and "Growth" in page and "Retention" in page
    assert "2 of the next 2 slots are still open" in page
    response = client.post("/columns/tuesday-talk/fill", data={"at": first.at.isoformat()})
    item = db.session.scalar(select(Item).where(Item.column_id == column.id))
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/items/{item.id}/edit")
    assert (item.planned_at, item.theme, item.status) == (first.at, "Growth", ItemStatus.DRAFT)
    assert "No. 12" in item.title
    page = client.get("/columns/tuesday-talk").get_data(as_text=True)
    assert f'href="/items/{item.id}"' in page and "1 of the next 2 slots is still open" in page
    # A second fill of the same slot is refused in words and creates nothing.
    again = client.post("/columns/tuesday-talk/fill", data={"at": first.at.isoformat()}, follow_redirects=True)
    assert "already filled" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Item)) == 1
    wrong = client.post("/columns/tuesday-talk/fill", data={"at": (second.at + timedelta(minutes=1)).isoformat()},
                        follow_redirects=True)
    assert "no slot of this column at that time" in wrong.get_data(as_text=True)


def test_list_warns_when_a_slot_ahead_is_open(client, users):
    make_column(slots_ahead=3)
    make_column(slug="quiet", name="Quiet", cadence="")
    login(client, "reviewer@example.com")
    page = client.get("/columns").get_data(as_text=True)
    assert "3 open slots ahead" in page
    assert "Every Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday at 20:00" in page
    assert "No cadence" in page


def test_dashboard_gap_appears_and_disappears_when_filled(client, users):
    column = make_column(slots_ahead=1, themes="Growth")
    login(client, "reviewer@example.com")
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="gap-tuesday-talk"' in page and "1 of its next 1 slots is open" in page
    assert "Fill" not in page.split('id="gap-tuesday-talk"')[1].split("</table>")[0]  # reviewers do not fill
    assert "Calendar subscription" not in page
    login(client, "editor@example.com")
    slot = schedule.next_slots(column, 1)[0]
    page = client.get("/dashboard").get_data(as_text=True)
    assert slot.at.isoformat() in page and "Calendar subscription" in page and "New link" not in page
    response = client.post("/columns/tuesday-talk/fill", data={"at": slot.at.isoformat(), "next": "dashboard"})
    item = db.session.scalar(select(Item))
    assert response.headers["Location"].endswith(f"/items/{item.id}/edit")
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="gap-tuesday-talk"' not in page and "Every active column has its next slots filled" in page
    if slot.at < utcnow() + timedelta(days=7):
        assert item.title in page  # the next seven days
    assert "Drafts: <strong>1</strong>" in page
    listed = client.get("/dashboard?status=draft").get_data(as_text=True)
    assert f'href="/items/{item.id}"' in listed
