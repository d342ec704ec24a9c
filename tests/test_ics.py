"""Calendar subscriptions (.ics): valid iCalendar, stable UIDs, UTC times across daylight saving,
secret-token addresses that a new link revokes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar

from publisher import items as items_module
from publisher import schedule
from publisher.extensions import db
from publisher.models import Column, Organisation, utcnow
from tests.conftest import login
from tests.factories import make_channel

BERLIN = ZoneInfo("Europe/Berlin")
DAILY_20 = "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;BYSECOND=0"


def berlin_column(**fields) -> Column:
    column = Column(name="Evening Notes", slug="evening-notes", cadence=DAILY_20, timezone="Europe/Berlin",
                    cadence_start=utcnow() - timedelta(days=1), first_issue=1, themes="Dawn\nDusk", **fields)
    db.session.add(column)
    db.session.commit()
    return column


def fetch(client, url: str) -> Calendar:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.get_data())


def events(cal: Calendar) -> dict[str, object]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def org_url() -> str:
    return f"/ics/{db.session.get(Organisation, 1).ics_token}.ics"


def test_organisation_calendar_items_and_open_slots(client, users):
    channel = make_channel("feed", name="News", title="News")
    column = berlin_column(default_channels=[channel])
    first, second = schedule.next_slots(column, 2)
    item = items_module.fill_slot(column, second.at, None)
    db.session.commit()
    cal = fetch(client, org_url())
    assert str(cal["X-WR-CALNAME"]) == "My community" and str(cal["X-WR-TIMEZONE"]) == "Asia/Shanghai"
    found = events(cal)
    event = found[f"item-{item.id}@127.0.0.1"]
    assert event["DTSTART"].dt == second.at and event["DTSTART"].dt.utcoffset() == timedelta(0)
    assert event["DTEND"].dt - event["DTSTART"].dt == timedelta(minutes=30)
    assert str(event["SUMMARY"]) == f"Evening Notes · No. {second.issue_number} · {item.title}"
    assert str(event["URL"]) == f"http://127.0.0.1:5000/items/{item.id}"
    assert "Status: Draft" in str(event["DESCRIPTION"]) and "Channels: News" in str(event["DESCRIPTION"])
    assert "DTSTAMP" in event and "LAST-MODIFIED" in event
    slot_uid = f"slot-{column.id}-{first.at:%Y%m%dT%H%M%SZ}@127.0.0.1"
    assert str(found[slot_uid]["SUMMARY"]) == f"Open slot: Evening Notes No. {first.issue_number} · {first.theme}"
    assert all("DTSTAMP" in e for e in found.values())
    opens = [e for uid, e in found.items() if uid.startswith("slot-")]
    assert 58 <= len(opens) <= 61  # a daily column over the next 60 days, minus the filled slot
    assert all(e["DTSTART"].dt < utcnow() + timedelta(days=60, minutes=1) for e in opens)
    without = events(fetch(client, org_url() + "?slots=0"))
    assert list(without) == [f"item-{item.id}@127.0.0.1"]


def test_uids_are_stable_across_an_edit(client, users):
    column = berlin_column()
    first, second = schedule.next_slots(column, 2)
    item = items_module.fill_slot(column, first.at, None)
    db.session.commit()
    url = f"/ics/columns/{column.slug}/{column.ics_token}.ics"
    before = events(fetch(client, url))[f"item-{item.id}@127.0.0.1"]
    item.title = "Renamed"
    item.planned_at = second.at + timedelta(hours=1)
    db.session.commit()
    after = events(fetch(client, url))
    event = after[f"item-{item.id}@127.0.0.1"]
    assert str(event["SUMMARY"]).endswith("Renamed") and event["DTSTART"].dt == second.at + timedelta(hours=1)
    assert event["DTSTART"].dt != before["DTSTART"].dt
    assert f"slot-{column.id}-{first.at:%Y%m%dT%H%M%SZ}@127.0.0.1" in after  # the slot it left is open again


def test_times_are_utc_across_daylight_saving_in_berlin(client, users):
    """Berlin moves to summer time on 28 March 2027: 20:00 local is 19:00 UTC before, 18:00 after."""
    column = berlin_column()
    before = datetime(2027, 3, 27, 20, 0, tzinfo=BERLIN)
    after = datetime(2027, 3, 29, 20, 0, tzinfo=BERLIN)
    planned = [items_module.fill_slot(column, at.astimezone(UTC), None) for at in (before, after)]
    db.session.commit()
    found = events(fetch(client, f"/ics/columns/{column.slug}/{column.ics_token}.ics"))
    starts = [found[f"item-{i.id}@127.0.0.1"]["DTSTART"].dt for i in planned]
    assert starts == [datetime(2027, 3, 27, 19, 0, tzinfo=UTC), datetime(2027, 3, 29, 18, 0, tzinfo=UTC)]
    raw = client.get(f"/ics/columns/{column.slug}/{column.ics_token}.ics").get_data(as_text=True)
    assert "DTSTART:20270327T190000Z" in raw and "DTSTART:20270329T180000Z" in raw


def test_wrong_tokens_are_not_found(client, users):
    column = berlin_column()
    org_token = db.session.get(Organisation, 1).ics_token
    assert client.get(f"/ics/{org_token}x.ics").status_code == 404
    assert client.get(f"/ics/{column.ics_token}.ics").status_code == 404  # a column's token is not the org's
    assert client.get(f"/ics/columns/{column.slug}/{org_token}.ics").status_code == 404
    assert client.get(f"/ics/columns/no-such/{column.ics_token}.ics").status_code == 404
    assert client.get(f"/ics/columns/{column.slug}/{column.ics_token}.ics").status_code == 200


def test_new_link_revokes_the_old_one(client, users):
    column = berlin_column()
    old_org, old_column = org_url(), f"/ics/columns/{column.slug}/{column.ics_token}.ics"
    login(client, "editor@example.com")
    page = client.get(f"/columns/{column.slug}").get_data(as_text=True)
    assert f"http://127.0.0.1:5000{old_column}" in page and "New link" not in page
    assert client.post("/dashboard/new-link").status_code == 403
    assert client.post(f"/columns/{column.slug}/new-link").status_code == 403
    client.post("/logout")
    login(client, "admin@example.com")
    assert f"http://127.0.0.1:5000{old_org}" in client.get("/dashboard").get_data(as_text=True)
    assert client.post("/dashboard/new-link").status_code == 302
    assert client.post(f"/columns/{column.slug}/new-link").status_code == 302
    db.session.expire_all()
    new_org, new_column = org_url(), f"/ics/columns/{column.slug}/{column.ics_token}.ics"
    assert new_org != old_org and new_column != old_column
    assert client.get(old_org).status_code == 404 and client.get(old_column).status_code == 404
    assert client.get(new_org).status_code == 200 and client.get(new_column).status_code == 200
    assert f"http://127.0.0.1:5000{new_column}" in client.get(f"/columns/{column.slug}").get_data(as_text=True)


def test_public_calendars_are_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="2 per minute")
    client = app.test_client()
    with app.app_context():
        url = f"/ics/{db.session.get(Organisation, 1).ics_token}.ics"
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 429]
