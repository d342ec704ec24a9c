from playwright.sync_api import expect

from publisher.extensions import db
from publisher.models import Role
from publisher.security import create_user
from tests.conftest import log_in


def test_login_and_logout(page, live_server):
    with live_server.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        db.session.commit()
    base = live_server.live_url
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "editor@example.com")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    expect(page.locator(".flash.error")).to_have_text("Wrong e-mail or password.")
    assert page.url.startswith(f"{base}/login")

    log_in(page, base, "editor@example.com")
    assert page.url == f"{base}/"
    expect(page.locator("h1")).to_have_text("Items")
    expect(page.locator(".mainnav a[aria-current=page]")).to_have_text("Items")
    expect(page.locator(".mainnav")).not_to_contain_text("Settings")  # editors have no settings
    expect(page.locator(".topbar")).to_contain_text("editor@example.com")

    page.click("button:has-text('Log out')")
    expect(page.locator(".flash")).to_have_text("You are logged out.")
    page.goto(f"{base}/")
    page.wait_for_url(lambda url: "/login" in url)
    expect(page.locator("input[name=password]")).to_be_visible()


def test_an_admin_sees_the_settings(page, live_server):
    with live_server.app_context():
        create_user("admin@example.com", "password-123", Role.ADMIN)
        db.session.commit()
    log_in(page, live_server.live_url, "admin@example.com")
    page.click(".mainnav a:has-text('Settings')")
    page.wait_for_url(f"{live_server.live_url}/settings")
    expect(page.locator(".mainnav a[aria-current=page]")).to_have_text("Settings")
    expect(page.locator("#user-1")).to_contain_text("admin@example.com")
