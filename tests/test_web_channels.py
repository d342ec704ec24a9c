"""The channel pages: a settings form generated from the adapter's fields; secrets never shown back."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import func, select, update

from channels import registry
from channels.base import Channel as Adapter
from channels.base import Field
from publisher.extensions import db
from publisher.models import Channel, Delivery
from tests.conftest import login
from tests.factories import make_channel, scheduled
from tests.test_web_items import english_client, fresh, logged_in

SECRET = "s3cr3t-Very-Private-9f2e"


class AllKinds(Adapter):
    type = "all-kinds-test"
    label = "All kinds (test)"
    fields = (
        Field("endpoint", "Endpoint", kind="url"),
        Field("token", "Access token", secret=True, help="From the service's admin console"),
        Field("retries", "Retries", kind="integer", required=False, default=3),
        Field("silent", "Post silently", kind="boolean", required=False, default=True),
        Field("footer", "Footer", kind="text", required=False),
        Field("room", "Room", required=False),
    )


@pytest.fixture
def client(app):
    return english_client(app)


@pytest.fixture
def all_kinds():
    registry.available()[AllKinds.type] = AllKinds
    yield AllKinds
    registry.available().pop(AllKinds.type)


@pytest.fixture
def hook(app, users):
    return make_channel("webhook", name="Partner hook", url="https://partner.example/hook", secret=SECRET, timeout=5)


def valid_form(**extra) -> dict:
    return {"name": "Test room", "cfg_endpoint": "https://chat.example/api", "cfg_token": SECRET,
            "cfg_retries": "5", "cfg_silent": "y", "cfg_footer": "— 社区运营组\n", "cfg_room": " lobby ", **extra}


# --- who may do what ----------------------------------------------------------------------------

def test_permissions(app, client, hook):
    writes = [("GET", "/channels/new"), ("GET", "/channels/new/webhook"), ("POST", "/channels/new/webhook"),
              ("GET", f"/channels/{hook.id}/edit"), ("POST", f"/channels/{hook.id}/edit"),
              ("POST", f"/channels/{hook.id}/toggle"), ("POST", f"/channels/{hook.id}/delete")]
    for method, path in [("GET", "/channels"), *writes]:
        resp = client.open(path, method=method, data={"name": "x"})
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path
    for role in ("editor", "reviewer"):
        c = logged_in(app, role)
        page = c.get("/channels")
        assert page.status_code == 200 and "Partner hook" in page.text and "Signed webhook" in page.text
        assert "/toggle" not in page.text and "/channels/new" not in page.text
        for method, path in writes:
            assert c.open(path, method=method, data={"name": "x"}).status_code == 403, (role, path)
    ch = fresh(Channel, hook.id)
    assert ch.name == "Partner hook" and ch.enabled


def test_the_list_counts_sent_and_failed(app, client, hook):
    deliveries = scheduled([hook]) + scheduled([hook]) + scheduled([hook])
    for d, status in zip(deliveries, ("sent", "sent", "failed"), strict=True):
        db.session.execute(update(Delivery).where(Delivery.id == d.id).values(status=status))
    db.session.commit()
    login(client, "reviewer@example.com")
    row = re.search(rf'<tr id="channel-{hook.id}">(.*?)</tr>', client.get("/channels").text, re.S).group(1)
    assert re.findall(r"<td>(\d+)</td>", row) == ["2", "1"]


# --- the generated form --------------------------------------------------------------------------

def test_the_form_is_generated_from_the_adapters_fields(app, client, users, all_kinds):
    login(client, "admin@example.com")
    choose = client.get("/channels/new").text
    assert all(label in choose for label in ("Signed webhook", "RSS / Atom feed", "All kinds (test)"))
    assert 'href="/channels/new/all-kinds-test"' in choose
    page = client.get("/channels/new/all-kinds-test").text
    assert re.search(r'<input[^>]*name="cfg_endpoint"[^>]*type="url"|<input[^>]*type="url"[^>]*name="cfg_endpoint"',
                     page)
    assert re.search(r'<input[^>]*name="cfg_token"[^>]*type="password"', page)
    assert re.search(r'<input[^>]*name="cfg_retries"[^>]*type="number"[^>]*value="3"', page)
    assert re.search(r'<input checked[^>]*name="cfg_silent"[^>]*type="checkbox"', page)
    assert re.search(r'<textarea[^>]*name="cfg_footer"', page)
    assert re.search(r'<input[^>]*name="cfg_room"[^>]*type="text"', page)
    for text in ("Endpoint", "Access token", "From the service&#39;s admin console", "Post silently", "(optional)"):
        assert text in page, text
    assert client.get("/channels/new/no-such-type").status_code == 404


def test_create_checks_each_kind_and_stores_typed_values(app, client, users, all_kinds):
    login(client, "admin@example.com")
    resp = client.post("/channels/new/all-kinds-test", data=valid_form(
        name=" ", cfg_endpoint="ftp://chat.example", cfg_retries="three", cfg_token=""))
    assert resp.status_code == 400
    for message in ("A name is required.", "starting with http:// or https://", "Enter a whole number.",
                    "This is required."):
        assert message in resp.text, message
    resp = client.post("/channels/new/all-kinds-test", data=valid_form(cfg_endpoint="chat.example"))
    assert resp.status_code == 400 and SECRET not in resp.text  # a typed secret is not sent back either
    assert db.session.scalar(select(func.count(Channel.id))) == 0

    resp = client.post("/channels/new/all-kinds-test", data=valid_form())
    assert resp.status_code == 302
    ch = db.session.scalar(select(Channel))
    assert ch.type == "all-kinds-test" and ch.name == "Test room" and ch.enabled
    assert ch.config == {"endpoint": "https://chat.example/api", "token": SECRET, "retries": 5, "silent": True,
                         "footer": "— 社区运营组\n", "room": "lobby"}
    assert SECRET not in ch.config_encrypted  # encrypted at rest


def test_secrets_never_appear_in_a_page_a_flash_or_a_log(app, client, users, caplog):
    caplog.set_level(logging.DEBUG)
    login(client, "admin@example.com")
    pages = [client.get("/channels/new/webhook").text]
    resp = client.post("/channels/new/webhook", data={"name": "Hook", "cfg_url": "https://x.example/h",
                                                       "cfg_secret": SECRET, "cfg_timeout": "4"},
                       follow_redirects=True)
    pages.append(resp.text)
    assert "Channel Hook is set up" in resp.text
    ch = db.session.scalar(select(Channel))
    assert ch.config["secret"] == SECRET
    pages.append(client.get(f"/channels/{ch.id}/edit").text)
    pages.append(client.post(f"/channels/{ch.id}/edit", data={"name": "", "cfg_url": "https://x.example/h",
                                                              "cfg_secret": SECRET + "-new"}).text)
    pages.append(client.post(f"/channels/{ch.id}/edit", data={"name": "Hook 2", "cfg_url": "https://x.example/h",
                                                              "cfg_secret": ""}, follow_redirects=True).text)
    pages.append(client.post(f"/channels/{ch.id}/toggle", follow_redirects=True).text)
    for role in ("editor", "reviewer"):
        pages.append(logged_in(app, role).get("/channels").text)
    assert "A value is stored" in pages[2] and "https://x.example/h" in pages[2]
    for page in pages:
        assert SECRET not in page
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_a_blank_secret_keeps_the_stored_one(app, client, hook):
    login(client, "admin@example.com")
    form = {"name": "Partner hook", "cfg_url": "https://partner.example/v2", "cfg_secret": "", "cfg_timeout": ""}
    assert client.post(f"/channels/{hook.id}/edit", data=form).status_code == 302
    assert fresh(Channel, hook.id).config == {"url": "https://partner.example/v2", "secret": SECRET}
    assert client.post(f"/channels/{hook.id}/edit", data={**form, "cfg_secret": "rotated"}).status_code == 302
    assert fresh(Channel, hook.id).config["secret"] == "rotated"


def test_a_secret_that_was_never_set_is_required(app, client, users):
    ch = make_channel("webhook", name="Half done", url="https://x.example/h")
    login(client, "admin@example.com")
    resp = client.post(f"/channels/{ch.id}/edit", data={"name": "Half done", "cfg_url": "https://x.example/h"})
    assert resp.status_code == 400 and "This is required." in resp.text


# --- switching off and deleting ------------------------------------------------------------------

def test_switch_off_and_on(app, client, hook):
    login(client, "admin@example.com")
    resp = client.post(f"/channels/{hook.id}/toggle", follow_redirects=True)
    assert "switched off" in resp.text and not fresh(Channel, hook.id).enabled
    assert "Partner hook" not in client.get("/items/new").text  # nothing new can be scheduled on it
    client.post(f"/channels/{hook.id}/toggle")
    assert fresh(Channel, hook.id).enabled and "Partner hook" in client.get("/items/new").text


def test_delete_only_without_deliveries(app, client, hook):
    spare = make_channel("feed", name="Spare feed")
    scheduled([hook])
    login(client, "admin@example.com")
    resp = client.post(f"/channels/{hook.id}/delete", follow_redirects=True)
    assert "has deliveries" in resp.text and "Switch it off instead" in resp.text
    assert fresh(Channel, hook.id) is not None
    resp = client.post(f"/channels/{spare.id}/delete", follow_redirects=True)
    assert "Channel Spare feed is deleted." in resp.text and fresh(Channel, spare.id) is None


def test_csrf_is_enforced(make_app):
    from publisher.models import Role
    from publisher.security import create_user

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user("admin@example.com", "password-123", Role.ADMIN)
        ch_id = make_channel("feed").id
    c = english_client(app)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"email": "admin@example.com", "password": "password-123", "csrf_token": token})
    assert c.get("/channels").status_code == 200
    assert c.post(f"/channels/{ch_id}/toggle").status_code == 400
    assert c.post("/channels/new/feed", data={"name": "F"}).status_code == 400
    with app.app_context():
        assert db.session.get(Channel, ch_id).enabled
        assert db.session.scalar(select(func.count(Channel.id))) == 1


def test_a_channel_may_set_its_own_rate_limit(app, client, hook):
    login(client, "admin@example.com")
    form = {"name": "Partner hook", "cfg_url": "https://partner.example/hook", "cfg_secret": ""}
    page = client.post(f"/channels/{hook.id}/edit", data={**form, "rate_limit": "fast please"})
    assert page.status_code == 400 and "Write a limit like 20/minute" in page.text
    assert "rate_limit" not in db.session.get(Channel, hook.id).config
    client.post(f"/channels/{hook.id}/edit", data={**form, "rate_limit": " 5/second;100/minute "})
    db.session.expire_all()
    assert db.session.get(Channel, hook.id).config["rate_limit"] == "5/second;100/minute"
    assert 'value="5/second;100/minute"' in client.get(f"/channels/{hook.id}/edit").text
    client.post(f"/channels/{hook.id}/edit", data={**form, "rate_limit": ""})
    db.session.expire_all()
    assert "rate_limit" not in db.session.get(Channel, hook.id).config
