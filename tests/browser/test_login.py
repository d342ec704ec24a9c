from publisher.extensions import db
from publisher.models import Role
from publisher.security import create_user
from tests.browser.conftest import log_in


def test_login_and_logout(page, live_server):
    with live_server.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        db.session.commit()
    page.goto(f"{live_server.live_url}/login")
    page.fill("input[name=email]", "editor@example.com")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").is_visible()
    log_in(page, live_server.live_url, "editor@example.com")
    assert "/login" not in page.url
