"""The calendar in a real browser (its timezone is Europe/Berlin, the organisation's Asia/Shanghai)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Column, Item, Role
from publisher.security import create_user
from tests.browser.test_editorial_flow import drag
from tests.conftest import log_in
from tests.factories import make_channel, set_organisation


def test_calendar_month_list_filters_and_click(page, live_server):
    url = live_server.live_url
    zone = ZoneInfo("Asia/Shanghai")
    today = datetime.now(zone).date()
    # 06:30 in Shanghai is the evening before in UTC and in the browser's Berlin: the event is on
    # today's square only if the calendar shows the organisation's time.
    due = datetime.combine(today, time(6, 30), zone)
    with live_server.app_context():
        set_organisation(timezone="Asia/Shanghai")
        create_user("editor@example.com", "password-123", Role.EDITOR)
        item = Item(title="Reading club", column=Column(name="Books", slug="books", color="#16a34a"))
        db.session.add(item)
        dispatch.schedule(item, [make_channel(name="WeCom")], due.astimezone(UTC))
        db.session.commit()
        item_id = item.id

    problems: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(url) else problems.append(f"foreign request {r.url}"))
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url} {r.failure}")
            if r.resource_type in {"script", "stylesheet"} else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and urlsplit(r.url).path.endswith((".js", ".css")) else None)

    page.goto(f"{url}/calendar")  # login required: the form sends us back here
    page.fill("input[name=email]", "editor@example.com")
    page.fill("input[name=password]", "password-123")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{url}/calendar")
    expect(page.locator("#calendar-zone")).to_contain_text("Asia/Shanghai")
    expect(page.locator(".fc-day-today")).to_have_attribute("data-date", today.isoformat())
    events = page.locator(".fc-event", has_text="Reading club")
    expect(page.locator(f'.fc-daygrid-day[data-date="{today.isoformat()}"] .fc-event')).to_contain_text("06:30")
    expect(events).to_have_count(1)

    # The filters refetch: untick the column, then pick a status the item does not have.
    page.get_by_label("Books").uncheck()
    expect(events).to_have_count(0)
    page.get_by_label("Books").check()
    expect(events).to_have_count(1)
    page.select_option("select[name=status]", "draft")
    expect(events).to_have_count(0)
    page.select_option("select[name=status]", "")
    expect(events).to_have_count(1)

    page.click(".fc-listWeek-button")
    row = page.locator(".fc-list-event", has_text="Reading club")
    expect(row.locator(".fc-list-event-time")).to_have_text("06:30")
    expect(row).to_contain_text("0/1 sent")
    row.locator("a").click()
    page.wait_for_url(f"{url}/items/{item_id}")
    expect(page.locator("h1")).to_have_text("Reading club")
    assert problems == []


def test_a_refused_drop_goes_back_and_says_why(page, live_server):
    url = live_server.live_url
    zone = ZoneInfo("Asia/Shanghai")
    today = datetime.now(zone).date()
    day, target_day = today + timedelta(days=2), today + timedelta(days=1)
    with live_server.app_context():
        set_organisation(timezone="Asia/Shanghai")
        create_user("editor@example.com", "password-123", Role.EDITOR)
        item = Item(title="Contested")
        db.session.add(item)
        dispatch.schedule(item, [make_channel(name="WeCom")], datetime.combine(day, time(9, 0), zone).astimezone(UTC))
        db.session.commit()
        item_id = item.id

    log_in(page, url, "editor@example.com")
    page.goto(f"{url}/calendar")
    event = page.locator(f'.fc-daygrid-day[data-date="{day.isoformat()}"] .fc-event', has_text="Contested")
    expect(event).to_have_count(1)
    with live_server.app_context():  # someone else edits it while the calendar is open
        db.session.get(Item, item_id).title = "Contested (edited)"
        db.session.commit()
    target = page.locator(f'.fc-daygrid-day[data-date="{target_day.isoformat()}"] .fc-daygrid-day-frame')
    with page.expect_response(lambda r: r.url.endswith(f"/api/calendar/items/{item_id}/move")) as refused:
        drag(page, event, target)
    assert refused.value.status == 409
    notice = page.locator("#calendar-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Someone else changed this item")
    expect(event).to_have_count(1)  # back on its day
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_be_hidden()
    with live_server.app_context():
        assert db.session.get(Item, item_id).planned_at.astimezone(zone).date() == day
