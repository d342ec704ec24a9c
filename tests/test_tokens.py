"""/tokens: each user's API tokens. The token is shown once; a revoked one is refused by the API."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from publisher.extensions import db
from publisher.models import ApiToken, Role, User
from publisher.security import create_token

TOKEN = re.compile(r"pub_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def users(app):
    """An editor and a reviewer, without hashing passwords: these tests never use the login form."""
    made = {role.value: User(email=f"{role.value}@example.com", role=role, password_hash="-")
            for role in (Role.EDITOR, Role.REVIEWER)}
    db.session.add_all(made.values())
    db.session.commit()
    return made


def log_in(client, user: User) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


def tokens_of(user: User) -> list[ApiToken]:
    db.session.expire_all()
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def test_the_page_needs_a_login(client):
    response = client.get("/tokens/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/tokens/", data={"name": "x"}).status_code == 302
    assert db.session.scalar(select(func.count(ApiToken.id))) == 0


def test_a_new_token_is_shown_once_and_works(client, users):
    editor = users["editor"]
    log_in(client, editor)
    created = client.post("/tokens/", data={"name": "CMS import"})
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    (token,) = set(TOKEN.findall(created.get_data(as_text=True)))
    assert 'id="copy-token"' in created.get_data(as_text=True)

    (row,) = tokens_of(editor)
    assert row.name == "CMS import" and token.startswith(row.prefix)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()  # only the hash is kept

    listing = client.get("/tokens/").get_data(as_text=True)
    assert token not in listing and TOKEN.search(listing) is None
    assert "CMS import" in listing and f"{row.prefix}…" in listing

    program = client.application.test_client()
    assert program.get("/api/items", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert tokens_of(editor)[0].last_used_at is not None


def test_each_user_sees_only_their_own(client, users):
    create_token(users["reviewer"], "reviewer's secret tool")
    db.session.commit()
    log_in(client, users["editor"])
    assert "reviewer&#39;s secret tool" not in client.get("/tokens/").get_data(as_text=True)
    assert "reviewer's secret tool" not in client.get("/tokens/").get_data(as_text=True)


def test_a_name_is_required(client, users):
    log_in(client, users["editor"])
    response = client.post("/tokens/", data={"name": "   "})
    assert response.status_code == 400
    assert 'class="error"' in response.get_data(as_text=True)
    assert tokens_of(users["editor"]) == []


def test_revoke(client, users):
    editor, reviewer = users["editor"], users["reviewer"]
    _row, token = create_token(editor, "old")
    other, _ = create_token(reviewer, "not yours")
    db.session.commit()
    log_in(client, editor)
    headers = {"Authorization": f"Bearer {token}"}
    program = client.application.test_client()
    assert program.get("/api/items", headers=headers).status_code == 200

    response = client.post(f"/tokens/{_row.id}/revoke")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tokens/")
    assert tokens_of(editor)[0].revoked_at is not None
    refused = program.get("/api/items", headers=headers)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"
    assert "revoked" in client.get("/tokens/").get_data(as_text=True)

    assert client.post(f"/tokens/{other.id}/revoke").status_code == 404
    assert tokens_of(reviewer)[0].revoked_at is None


def test_revoking_needs_the_csrf_token(make_app, users):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    row, _token = create_token(users["editor"], "t")
    db.session.commit()
    log_in(client, users["editor"])
    assert client.post(f"/tokens/{row.id}/revoke").status_code == 400
    assert tokens_of(users["editor"])[0].revoked_at is None
    page = client.get("/tokens/").get_data(as_text=True)
    csrf = re.search(rf'action="/tokens/{row.id}/revoke"[^>]*>\s*<input type="hidden" name="csrf_token" '
                     r'value="([^"]+)"', page)
    assert csrf, "the revoke form has no CSRF token"
    assert client.post(f"/tokens/{row.id}/revoke", data={"csrf_token": csrf.group(1)}).status_code == 302
    assert tokens_of(users["editor"])[0].revoked_at is not None


def test_a_token_cannot_manage_tokens(client, users):
    _row, token = create_token(users["editor"], "t")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/tokens/", headers=headers).status_code == 403
    assert client.post("/tokens/", data={"name": "more"}, headers=headers).status_code == 403
    assert len(tokens_of(users["editor"])) == 1


def test_in_a_browser_create_copy_and_revoke(browser, live_server, users):
    editor = users["editor"]
    # Log in as Flask-Login does, with a signed session cookie (the login page has tests of its own).
    cookie = live_server.session_interface.get_signing_serializer(live_server).dumps(
        {"_user_id": str(editor.id), "_fresh": True})
    context = browser.new_context(locale="en-US", permissions=["clipboard-read", "clipboard-write"])
    context.add_cookies([{"name": live_server.config["SESSION_COOKIE_NAME"], "value": cookie,
                          "url": live_server.live_url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{live_server.live_url}/tokens/")
        page.fill("input[name=name]", "Browser token")
        page.click("button[type=submit].primary")
        token = page.input_value("#token")
        assert TOKEN.fullmatch(token)
        page.click("#copy-token")
        page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
        assert page.text_content("#copy-status") == "Copied"
        assert page.evaluate("navigator.clipboard.readText()") == token

        page.click("text=Done")
        row = tokens_of(editor)[0]
        assert token not in page.content()
        page.on("dialog", lambda dialog: dialog.accept())
        page.click(f"#token-{row.id} button")
        page.wait_for_selector(f"#token-{row.id}[data-revoked=true]")
        assert tokens_of(editor)[0].revoked_at is not None
    finally:
        context.close()
