"""The editorial flow in a real browser, end to end: create a weekly column on its page, fill its open
slot from the calendar in one click, drag the draft to another day, then submit it, and as a reviewer
look at its per-channel previews and approve it.

The organisation is in Asia/Shanghai, the browser in Europe/Berlin: the calendar must show and move
items in the organisation's time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from publisher.extensions import db
from publisher.models import Column, Item, Role
from publisher.security import create_user
from tests.conftest import log_in
from tests.factories import make_channel, set_organisation

ZONE = ZoneInfo("Asia/Shanghai")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def drag(page, source, target) -> None:
    """Press on `source`, move to `target` in small steps (FullCalendar needs real movement), release."""
    page.set_viewport_size({"width": 1280, "height": 1600})  # the whole month on screen: mouse events need it
    source.scroll_into_view_if_needed()
    start, end = source.bounding_box(), target.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(start["x"] + start["width"] / 2 + 5, start["y"] + start["height"] / 2 + 5, steps=3)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=15)
    page.mouse.up()


def test_column_slot_drag_review_and_previews(browser, page, live_server):
    url = live_server.live_url
    today = datetime.now(ZONE).date()
    slot_day, target_day = today + timedelta(days=3), today + timedelta(days=1)  # both in the month view
    with live_server.app_context():
        set_organisation(timezone="Asia/Shanghai", require_approval=True)
        create_user("editor@example.com", "password-123", Role.EDITOR)
        create_user("reviewer@example.com", "password-123", Role.REVIEWER)
        channel_id = make_channel("feed", name="Community feed", title="Community").id
        db.session.commit()

    # 1. A column with a weekly cadence, through its form: on the slot's weekday at 20:00.
    log_in(page, url, "editor@example.com")
    page.goto(f"{url}/columns/new")
    page.fill("input[name=name]", "Weekly picks")
    page.fill("input[name=slug]", "weekly-picks")
    page.check("input[name=mode][value=weekly]")
    page.check(f"input[name=days][value={DAYS[slot_day.weekday()]}]")
    page.fill("input[name=at]", "20:00")
    page.fill("input[name=cadence_start]", today.isoformat())
    page.fill("textarea[name=themes]", "Books\nFilms")
    page.check(f"input[name=channel_ids][value='{channel_id}']")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{url}/columns/weekly-picks")

    # 2. The calendar warns about the gap and draws the open slot; one click (and a yes) fills it.
    page.goto(f"{url}/calendar")
    expect(page.locator("#calendar-gaps")).to_contain_text("Weekly picks")
    slot = page.locator(f'.fc-daygrid-day[data-date="{slot_day.isoformat()}"] .pub-slot')
    expect(slot).to_contain_text("No. 1 · Books")
    slot.click()
    expect(page.locator("#slot-fill")).to_be_visible()
    expect(page.locator("#slot-fill-question")).to_have_text(
        f"Fill No. 1 · Books of Weekly picks on {slot_day.isoformat()} 20:00?")
    page.get_by_role("button", name="Create the draft").click()
    page.wait_for_url(re.compile(r".*/items/\d+/edit$"))
    item_id = int(page.url.rsplit("/", 2)[1])
    with live_server.app_context():
        item = db.session.get(Item, item_id)
        column = db.session.get(Column, item.column_id)
        assert (column.name, item.status, item.theme) == ("Weekly picks", "draft", "Books")
        planned = item.planned_at
        assert planned.astimezone(ZONE).date() == slot_day and planned.astimezone(ZONE).strftime("%H:%M") == "20:00"

    # 3. Drag the draft to another day in month view; after a reload it is there.
    page.goto(f"{url}/calendar")
    event = page.locator(f'.fc-daygrid-day[data-date="{slot_day.isoformat()}"] .fc-event:not(.pub-slot)')
    expect(event).to_contain_text("No. 1")
    target = page.locator(f'.fc-daygrid-day[data-date="{target_day.isoformat()}"] .fc-daygrid-day-frame')
    with page.expect_response(lambda r: r.url.endswith(f"/api/calendar/items/{item_id}/move")) as moved:
        drag(page, event, target)
    assert moved.value.status == 200, moved.value.text()
    page.reload()
    on_target = page.locator(f'.fc-daygrid-day[data-date="{target_day.isoformat()}"] .fc-event:not(.pub-slot)')
    expect(on_target).to_contain_text("No. 1")
    expect(page.locator(f'.fc-daygrid-day[data-date="{slot_day.isoformat()}"] .pub-slot')).to_have_count(1)
    with live_server.app_context():
        assert db.session.get(Item, item_id).planned_at == planned - timedelta(days=2)  # same 20:00

    # 4. The editor submits it; a reviewer reads what each channel will receive, then approves.
    page.goto(f"{url}/items/{item_id}")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".flash.success")).to_contain_text("Submitted for review")

    reviewer = browser.new_context(locale="en-US", timezone_id="Europe/Berlin")
    review = reviewer.new_page()
    try:
        log_in(review, url, "reviewer@example.com")
        review.goto(f"{url}/items/{item_id}/previews")
        card = review.locator(f'article.preview[data-channel-id="{channel_id}"]')
        expect(card.locator("h3")).to_contain_text("Community feed")
        expect(card).to_contain_text("No. 1")
        review.goto(f"{url}/items/{item_id}")
        review.get_by_role("button", name="Approve").click()
        expect(review.locator(".flash.success")).to_contain_text("Approved")
    finally:
        reviewer.close()
    with live_server.app_context():
        item = db.session.get(Item, item_id)
        assert item.status == "approved" and item.reviewed_by.email == "reviewer@example.com"
