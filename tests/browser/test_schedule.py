"""An editor schedules an item a few seconds ahead and watches it go out, without reloading the page."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from sqlalchemy import select

from publisher.extensions import db
from publisher.models import Delivery, Role
from publisher.security import create_user
from tests.conftest import log_in
from tests.factories import webhook_channel

ORG_ZONE = ZoneInfo("Asia/Shanghai")  # the organisation's default; the browser runs in Europe/Berlin


def test_scheduled_item_goes_out_and_the_page_follows(page, live_server, processes, webhook_double):
    processes.start("worker")
    processes.start("scheduler")
    with live_server.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        db.session.commit()
        channel_id = webhook_channel(webhook_double, name="Partner hook").id
    base = live_server.live_url
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Europe/Berlin"

    log_in(page, base, "editor@example.com")
    page.goto(f"{base}/items/new")
    expect(page.locator("#due_at-zone")).to_contain_text("Asia/Shanghai")
    page.fill("input[name=title]", "第12期：社群运营周报")
    page.fill("textarea[name=body]", "**本周**：三场活动")
    page.check(f"input[name=channel_ids][value='{channel_id}']")
    due = datetime.fromtimestamp(math.ceil((datetime.now(UTC) + timedelta(seconds=6)).timestamp()), UTC)
    entered = due.astimezone(ORG_ZONE).strftime("%Y-%m-%dT%H:%M:%S")
    page.fill("#due_at", entered)
    expect(page.locator("input[name=when][value=at]")).to_be_checked()  # typing a time chose "at a time"
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/items/" in url and not url.endswith("/new"))
    assert datetime.now(UTC) < due, "the form took too long to submit; the test proves nothing"

    row = page.locator("tbody.delivery")
    expect(row).to_have_attribute("data-status", "scheduled")
    expect(row).to_contain_text(due.astimezone(ORG_ZONE).strftime("%Y-%m-%d %H:%M:%S"))
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.stillTheSamePage = true")

    expect(row).to_have_attribute("data-status", "sent", timeout=30_000)
    expect(row.locator(".status")).to_have_text("Sent")
    expect(row).to_contain_text("The channel accepted it.")
    expect(page.locator("#deliveries .deliveries")).to_have_attribute("data-final", "true")
    assert page.evaluate("window.stillTheSamePage") is True and navigations == []

    assert len(webhook_double.requests) == 1 and list(webhook_double.posts.values()) == [1]
    assert webhook_double.requests[0].at >= due.timestamp()
    assert webhook_double.requests[0].json()["title"] == "第12期：社群运营周报"
    with live_server.app_context():
        assert db.session.scalar(select(Delivery.due_at)) == due
