"""The built-in demo receiver and the `publisher demo` command."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import func, select

from publisher import dispatch
from publisher.demo import LOGIN_FILE, demo_secret, seed, summary
from publisher.extensions import db
from publisher.models import (
    Channel,
    Column,
    Delivery,
    DeliveryEvent,
    DemoReceipt,
    Item,
    Organisation,
    Role,
    User,
    utcnow,
)
from publisher.security import create_user
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, SECRET, service_env
from tests.factories import make_channel, scheduled, set_organisation
from workers.worker import run as run_worker


@pytest.fixture
def client(client):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # the assertions read English labels
    return client


def signed_post(client, inbox: str, payload: dict, key: str = "key-1", secret: str | None = None,
                timestamp: int | None = None, content_type: str = "application/json"):
    """Sign as the header definition says (written here, not taken from the adapter)."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new((secret or demo_secret()).encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"X-Publisher-Timestamp": ts, "X-Publisher-Signature": f"sha256={digest}", "Idempotency-Key": key}
    return client.post(f"/demo/receiver/{inbox}", data=body, headers=headers, content_type=content_type)


def receipts() -> list[DemoReceipt]:
    db.session.expire_all()
    return list(db.session.scalars(select(DemoReceipt).order_by(DemoReceipt.id)))


# --- the receiver ------------------------------------------------------------------------------

def test_the_secret_is_derived_from_the_secret_key(make_app):
    secrets = []
    for key in (SECRET, "another-secret-key"):
        with make_app(SECRET_KEY=key).app_context():
            secrets.append(demo_secret())
    assert secrets[0] == hmac.new(SECRET.encode(), b"demo-receiver", hashlib.sha256).hexdigest()
    assert secrets[0] != secrets[1] and SECRET not in secrets


def test_a_signed_post_is_stored(app, client):
    payload = {"title": "第12期：社群运营", "body": "**Hello**", "item_id": 7}
    resp = signed_post(client, "wecom-group", payload)
    assert resp.status_code == 200
    [receipt] = receipts()
    assert resp.get_json() == {"id": receipt.id}
    assert receipt.inbox == "wecom-group" and receipt.title == "第12期：社群运营" and receipt.repeats == 0
    assert json.loads(receipt.payload) == payload


@pytest.mark.parametrize("problem", ["wrong secret", "stale", "future", "no signature", "garbled", "tampered"])
def test_a_post_that_is_not_ours_is_refused(app, client, problem):
    if problem == "wrong secret":
        resp = signed_post(client, "wecom-group", {"title": "x"}, secret="not-the-demo-secret")
    elif problem == "stale":
        resp = signed_post(client, "wecom-group", {"title": "x"}, timestamp=int(time.time()) - 301)
    elif problem == "future":
        resp = signed_post(client, "wecom-group", {"title": "x"}, timestamp=int(time.time()) + 301)
    elif problem == "no signature":
        resp = client.post("/demo/receiver/wecom-group", json={"title": "x"}, headers={"Idempotency-Key": "k"})
    elif problem == "garbled":
        headers = {"X-Publisher-Timestamp": str(int(time.time())), "Idempotency-Key": "k",
                   "X-Publisher-Signature": "sha256=" + "é" * 64}
        resp = client.post("/demo/receiver/wecom-group", json={"title": "x"}, headers=headers)
    else:
        good = signed_post(client, "other", {"title": "x"}, key="probe")
        assert good.status_code == 200
        headers = {"X-Publisher-Timestamp": str(int(time.time())), "Idempotency-Key": "k",
                   "X-Publisher-Signature": "sha256=" + "0" * 64}
        resp = client.post("/demo/receiver/wecom-group", json={"title": "x"}, headers=headers)
    assert resp.status_code == 401
    assert resp.is_json and resp.get_json()["error"]
    assert [r.inbox for r in receipts()] == (["other"] if problem == "tampered" else [])


def test_a_signed_post_that_is_not_json_is_refused(app, client):
    resp = signed_post(client, "wecom-group", {"title": "x"}, content_type="text/plain")
    assert resp.status_code == 415 and "JSON" in resp.get_json()["error"]
    assert receipts() == []


def test_a_repeated_key_is_dropped(app, client):
    first = signed_post(client, "wecom-group", {"title": "Once"}, key="same")
    second = signed_post(client, "wecom-group", {"title": "Once"}, key="same")
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json()
    [receipt] = receipts()
    assert receipt.repeats == 1
    # The same key in another inbox is another group's post.
    assert signed_post(client, "dingtalk-group", {"title": "Once"}, key="same").status_code == 200
    assert [(r.inbox, r.repeats) for r in receipts()] == [("wecom-group", 1), ("dingtalk-group", 0)]


def test_the_receiver_is_csrf_exempt_and_rate_limited(make_app):
    app = make_app(WTF_CSRF_ENABLED=True, RATELIMIT_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        # A sender has no CSRF token: the signature is what proves the request is ours.
        statuses = [signed_post(client, "wecom-group", {"title": "t"}, key="k").status_code for _ in range(601)]
    assert statuses[:600] == [200] * 600 and statuses[600] == 429


def test_the_receiver_page(app, client, users):
    from tests.conftest import login

    assert client.get("/demo/receiver").status_code == 302
    assert client.get("/demo/received").status_code == 302
    channel = make_channel("webhook", url="http://127.0.0.1:9/", secret="s")
    due = utcnow() - timedelta(seconds=3)
    (delivery,) = scheduled([channel], due, title="第12期：社群运营")
    body = {"title": "第12期：社群运营", "body": "**加粗** <script>alert(1)</script>"}
    signed_post(client, "wecom-group", body, key=delivery.idempotency_key)
    signed_post(client, "wecom-group", body, key=delivery.idempotency_key)
    signed_post(client, "dingtalk-group", {"title": "From elsewhere", "body": ""}, key="not-ours")

    login(client, "editor@example.com")
    html = client.get("/demo/receiver").get_data(as_text=True)
    assert 'src="/static/demo.js"' in html and 'data-url="/demo/received"' in html
    fragment = client.get("/demo/received").get_data(as_text=True)
    assert fragment in html  # the page starts with what the fragment gives
    rows = fragment.split("<tr data-receipt=")[1:]
    assert "From elsewhere" in rows[0] and "not one of our deliveries" in rows[0]  # newest first
    ours = rows[1]
    assert "wecom-group" in ours and "第12期：社群运营" in ours
    assert "<strong>加粗</strong>" in ours and "<script>alert(1)" not in ours
    assert due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S") in ours
    assert re.search(r">\s*[34]\.\d s\s*<", ours), ours  # received about three seconds after it was due
    assert "1 repeat dropped" in ours


def _watch_receiver(base: str, ready: threading.Event, sent: threading.Event, expected: dict, seen: dict) -> None:
    """An editor with the receiver page open, in a real browser.

    It runs in a thread of its own: Playwright's sync API refuses to start a second instance in a
    thread where the browser tests' session-wide instance is already running.
    """
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(locale="en-US", timezone_id="Europe/Berlin").new_page()
                page.set_default_timeout(10_000)
                page.goto(f"{base}/login?next=/demo/receiver")
                page.fill("input[name=email]", "editor@example.com")
                page.fill("input[name=password]", "password-123")
                page.click("main button[type=submit]")  # the header has submit buttons too (language)
                page.wait_for_url(f"{base}/demo/receiver")
                expect(page.locator(".demo-empty")).to_be_visible()
                page.evaluate("window.stillTheSamePage = true")
                ready.set()
                assert sent.wait(30), "nothing was sent"
                row = page.locator(f'tr[data-receipt="{expected["receipt"]}"]')
                expect(row).to_contain_text(expected["title"], timeout=5000)
                expect(row).to_contain_text("wecom-group")
                expect(row).to_contain_text(expected["due"])
                seen["same page"] = page.evaluate("window.stillTheSamePage")
            finally:
                browser.close()
    except BaseException as exc:  # handed to the test's thread, which reports it
        seen["error"] = exc
    finally:
        ready.set()


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="no chromium (apt-get install chromium)")
def test_a_post_arrives_on_the_receiver_page_without_a_reload(live_server):
    """Through a real HTTP server: schedule, tick, a real RQ worker sends, the open page shows it."""
    base = live_server.live_url
    with live_server.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        db.session.commit()
        channel = make_channel("webhook", "企业微信群 · 演示", url=f"{base}/demo/receiver/wecom-group",
                               secret=demo_secret(), timeout=5)
    ready, sent = threading.Event(), threading.Event()
    expected: dict = {}
    seen: dict = {}
    watcher = threading.Thread(target=_watch_receiver, args=(base, ready, sent, expected, seen), daemon=True)
    watcher.start()
    assert ready.wait(30) and "error" not in seen, seen.get("error")

    with live_server.app_context():
        (delivery,) = scheduled([channel], title="第13期：直播预告")
        dispatch.tick()
        run_worker(live_server, burst=True)
        db.session.expire_all()
        delivery = db.session.get(Delivery, delivery.id)
        assert delivery.status == "sent", delivery.last_error
        [receipt] = receipts()
        assert receipt.idempotency_key == delivery.idempotency_key and delivery.external_id == str(receipt.id)
        expected.update(receipt=receipt.id, title="第13期：直播预告",
                        due=delivery.due_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S"))
    sent.set()
    watcher.join(60)
    if "error" in seen:
        raise seen["error"]
    assert seen == {"same page": True}


# --- `publisher demo` -----------------------------------------------------------------------------

COUNTED = (Organisation, User, Column, Channel, Item, Delivery, DeliveryEvent)


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {m.__tablename__: db.session.scalar(select(func.count()).select_from(m)) for m in COUNTED}


def printed_password(text: str, email: str) -> str:
    return re.search(rf"{re.escape(email)}\s+password: (\S+)", text).group(1)


@pytest.fixture
def fresh_login_file(app):
    path = os.path.join(app.instance_path, LOGIN_FILE)
    if os.path.exists(path):
        os.remove(path)
    return path


def test_demo_twice_changes_nothing(app, client, fresh_login_file):
    first = summary(seed())
    before = counts()
    assert before == {"organisation": 1, "users": 5, "columns": 3, "channels": 3, "items": 10,
                      "deliveries": 6 + 4 * 2, "delivery_events": 6 * 2 + 4 * 2}
    second = summary(seed())
    assert counts() == before
    assert "nothing changed" in second
    assert printed_password(first, "admin@example.com") == printed_password(second, "admin@example.com")
    assert "/items/new" in second and "企业微信群 · 演示" in second and app.config["BASE_URL"] in second
    assert os.stat(fresh_login_file).st_mode & 0o777 == 0o600

    org = db.session.get(Organisation, 1)
    assert (org.name, org.timezone, org.locale) == ("开源社区运营 Demo", "Asia/Shanghai", "zh_CN")
    hooks = db.session.scalars(select(Channel).where(Channel.type == "webhook").order_by(Channel.id)).all()
    assert [c.config["url"] for c in hooks] == [f"{app.config['BASE_URL']}/demo/receiver/wecom-group",
                                                f"{app.config['BASE_URL']}/demo/receiver/dingtalk-group"]
    assert all(c.config["secret"] == demo_secret() for c in hooks)
    planned = db.session.scalars(select(Delivery).where(Delivery.status == "scheduled")).all()
    assert len(planned) == 8 and all(d.due_at > utcnow() and d.channel.type == "webhook" for d in planned)

    # The archive and the feeds have content at once.
    assert client.get("/feeds/all.atom").get_data(as_text=True).count("<entry>") == 6
    assert client.get("/archive").get_data(as_text=True).count('class="title"') == 6
    story = db.session.scalar(select(Item).where(Item.origin == "ugc", Item.status == "published").limit(1))
    assert f"Contributed by {story.author.name}" in client.get(f"/archive/{story.id}").get_data(as_text=True)

    resp = client.post("/login?next=/demo/receiver",
                       data={"email": "admin@example.com", "password": printed_password(second, "admin@example.com")})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/demo/receiver")
    assert client.get("/demo/receiver").status_code == 200


def test_demo_command_in_a_subprocess(app, client, base_config, fresh_login_file):
    seed()
    before = counts()
    done = subprocess.run([sys.executable, "-m", "publisher", "demo"], env=service_env(base_config), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert counts() == before
    assert "nothing changed" in done.stdout
    password = printed_password(done.stdout, "editor@example.com")
    with open(fresh_login_file, encoding="utf-8") as fh:
        assert f"editor@example.com {password}" in fh.read()
    resp = client.post("/login?next=/demo/receiver", data={"email": "editor@example.com", "password": password})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/demo/receiver")


def test_demo_keeps_an_operators_own_settings_and_accounts(app, fresh_login_file):
    set_organisation(name="Our own community", timezone="Europe/Berlin", locale="en")
    create_user("admin@example.com", "their-own-password", Role.ADMIN)
    db.session.commit()
    text = summary(seed())
    org = db.session.get(Organisation, 1)
    assert (org.name, org.timezone, org.locale) == ("Our own community", "Europe/Berlin", "en")
    assert "admin@example.com   (password not shown" in text
    with open(fresh_login_file, encoding="utf-8") as fh:
        assert "admin@example.com" not in fh.read()
    printed_password(text, "editor@example.com")
