"""The deliveries page in a real browser: an editor opens it from the navigation, looks at the failed
ones of a channel, retries one, and sees it leave the failed tab and arrive among the sent."""

from __future__ import annotations

from playwright.sync_api import expect

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Delivery, Role
from publisher.security import create_user
from tests.conftest import log_in
from tests.doubles import Answer
from tests.factories import scheduled, webhook_channel
from workers.queues import delivery_queue
from workers.worker import run as run_worker


def run_due(app) -> None:
    """One scheduler tick and a burst worker, as the processes would."""
    with app.app_context():
        dispatch.tick()
    run_worker(app, burst=True)


def test_retry_a_failed_delivery(page, live_server, webhook_double):
    url = live_server.live_url
    webhook_double.answer(Answer(400, "title must not be empty"), Answer(400, "title must not be empty"))
    with live_server.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        hook = webhook_channel(webhook_double)
        first = scheduled([hook], title="Spring issue")[0].id
        second = scheduled([hook], title="Summer issue")[0].id
        db.session.commit()
    run_due(live_server)
    with live_server.app_context():
        assert {db.session.get(Delivery, i).status for i in (first, second)} == {"failed"}

    log_in(page, url, "editor@example.com")
    page.click(".mainnav a:has-text('Deliveries')")
    expect(page.locator("h1")).to_have_text("Deliveries")
    page.click("#tab-failed")
    expect(page.locator("#tab-failed .count")).to_have_text("2")
    page.select_option("select#channel", label="webhook channel")
    page.click("form.filters button[type=submit]")
    row = page.locator(f"#delivery-{first}")
    expect(row).to_contain_text("Spring issue")
    expect(row).to_contain_text("The channel refused it.")
    expect(row).to_contain_text("title must not be empty")

    row.locator("button:has-text('Retry now')").click()
    expect(page.locator(".flash.success")).to_contain_text("will be tried again now")
    expect(page.locator(f"#delivery-{first}")).to_have_count(0)  # no longer failed
    expect(page.locator(f"#delivery-{second}")).to_be_visible()
    expect(page.locator("#tab-failed .count")).to_have_text("1")
    assert "channel=" in page.url  # the filters are kept

    run_due(live_server)
    page.click("#tab-sent")
    expect(page.locator(f"#delivery-{first}")).to_contain_text("The channel accepted it.")
    expect(page.locator(f"#delivery-{first} [data-status=sent]")).to_be_visible()
    assert len(webhook_double.posts) == 1


def test_queue_health_refreshes_itself(page, live_server):
    url = live_server.live_url
    with live_server.app_context():
        create_user("admin@example.com", "password-123", Role.ADMIN)
        db.session.commit()
    log_in(page, url, "admin@example.com")
    page.goto(f"{url}/settings")
    page.click("a:has-text('Queue health')")
    expect(page.locator("#waiting")).to_have_text("0")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    with live_server.app_context():
        delivery_queue().enqueue("workers.jobs.deliver", 999999, 1)
    expect(page.locator("#waiting")).to_have_text("1", timeout=10_000)
    assert page.evaluate("window.loadedOnce") is True
