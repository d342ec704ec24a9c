"""Browser tests: Debian's chromium driven by Playwright against the app served on 127.0.0.1.

They skip only when no chromium is installed and we are not in CI; in CI a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def _playwright():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the browser tests (apt-get install chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(_playwright):
    b = _playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def live_server(make_app):
    """The app on a real HTTP server in a thread, with CSRF on as in production."""
    srv = make_server("127.0.0.1", 0, None, threaded=True)
    url = f"http://127.0.0.1:{srv.server_port}"
    app = make_app(WTF_CSRF_ENABLED=True, BASE_URL=url)
    srv.app = app
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    app.live_url = url
    yield app
    srv.shutdown()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(locale="en-US", timezone_id="Europe/Berlin")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    yield pg
    context.close()


def log_in(page, base_url: str, email: str, password: str = "password-123") -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.press("input[name=password]", "Enter")  # the header has submit buttons too (language, logout)
    page.wait_for_url(lambda u: "/login" not in u)
