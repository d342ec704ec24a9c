"""Settings: the organisation and the user accounts (admins only)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from publisher.extensions import db
from publisher.models import Organisation, Role, User
from publisher.security import create_user
from tests.conftest import login
from tests.test_web_items import english_client, fresh, logged_in


@pytest.fixture
def client(app):
    return english_client(app)


def user(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


ORG = {"name": "开源社区运营组", "timezone": "Europe/Berlin", "locale": "en"}


def test_only_admins(app, client, users):
    uid = users["editor"].id
    routes = [("GET", "/settings"), ("POST", "/settings"), ("GET", "/settings/users/new"),
              ("POST", "/settings/users/new"), ("POST", f"/settings/users/{uid}/role"),
              ("POST", f"/settings/users/{uid}/active")]
    data = {**ORG, "role": "admin", "email": "x@example.com", "password": "long-enough"}
    for method, path in routes:
        resp = client.open(path, method=method, data=data)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path
    for role in ("editor", "reviewer"):
        c = logged_in(app, role)
        assert 'href="/settings"' not in c.get("/").text  # not even in the navigation
        for method, path in routes:
            assert c.open(path, method=method, data=data).status_code == 403, (role, path)
    assert user("editor@example.com").role == "editor" and user("x@example.com") is None
    assert 'href="/settings"' in logged_in(app, "admin").get("/").text


def test_organisation_settings(app, client, users):
    login(client, "admin@example.com")
    page = client.get("/settings").text
    assert '<option value="Asia/Shanghai">' in page and 'list="timezones"' in page
    for bad, message in [({"timezone": "Mars/Olympus"}, "Unknown timezone"), ({"timezone": ""}, "Unknown timezone"),
                         ({"name": " "}, "A name is required."), ({"locale": "fr"}, "Choose a language")]:
        resp = client.post("/settings", data={**ORG, **bad})
        assert resp.status_code == 400 and message in resp.text, bad
    org = fresh(Organisation, 1)
    assert (org.name, org.timezone, org.locale) == ("My community", "Asia/Shanghai", "en")
    resp = client.post("/settings", data=ORG, follow_redirects=True)
    assert "Settings saved." in resp.text and "开源社区运营组" in resp.text
    org = fresh(Organisation, 1)
    assert (org.name, org.timezone, org.locale) == ("开源社区运营组", "Europe/Berlin", "en")


def test_create_a_user(app, client, users):
    login(client, "admin@example.com")
    form = {"email": "Wang.Li@Example.com", "name": "王丽", "role": "reviewer", "password": "eight888"}
    for bad, message in [({"password": "seven77"}, "at least 8 characters"),
                         ({"email": "not-an-address"}, "Enter an e-mail address"),
                         ({"email": "EDITOR@example.com"}, "already a user with this e-mail"),
                         ({"role": "owner"}, "Choose a role")]:
        resp = client.post("/settings/users/new", data={**form, **bad})
        assert resp.status_code == 400 and message in resp.text, bad
        assert "eight888" not in resp.text  # the password is not sent back
    assert user("wang.li@example.com") is None
    resp = client.post("/settings/users/new", data=form, follow_redirects=True)
    assert "User wang.li@example.com is created." in resp.text and "王丽" in resp.text
    made = user("wang.li@example.com")
    assert made.role == "reviewer" and made.name == "王丽" and made.active
    assert login(english_client(app), "wang.li@example.com", "eight888").status_code == 302


def test_change_role(app, client, users):
    login(client, "admin@example.com")
    uid = users["editor"].id
    resp = client.post(f"/settings/users/{uid}/role", data={"role": "reviewer"}, follow_redirects=True)
    assert "editor@example.com is now: Reviewer." in resp.text and user("editor@example.com").role == "reviewer"
    resp = client.post(f"/settings/users/{uid}/role", data={"role": "boss"}, follow_redirects=True)
    assert "Choose a role" in resp.text and user("editor@example.com").role == "reviewer"


def test_the_last_admin_stays(app, client, users):
    admin = users["admin"]
    login(client, "admin@example.com")
    resp = client.post(f"/settings/users/{admin.id}/role", data={"role": "editor"}, follow_redirects=True)
    assert "is the last admin" in resp.text and user("admin@example.com").role == "admin"
    resp = client.post(f"/settings/users/{admin.id}/active", follow_redirects=True)
    assert "You cannot deactivate yourself" in resp.text and user("admin@example.com").active

    # With a second admin, one may step down; then the other one is the last.
    second = create_user("second@example.com", "password-123", Role.ADMIN)
    db.session.commit()
    assert client.post(f"/settings/users/{second.id}/role", data={"role": "editor"}).status_code == 302
    assert user("second@example.com").role == "editor"
    client.post(f"/settings/users/{second.id}/role", data={"role": "admin"})
    assert client.post(f"/settings/users/{admin.id}/role", data={"role": "editor"}).status_code == 302
    assert user("admin@example.com").role == "editor"
    assert client.get("/settings").status_code == 403  # stepped down: no longer an admin

    other = logged_in(app, "second")
    resp = other.post(f"/settings/users/{second.id}/role", data={"role": "reviewer"}, follow_redirects=True)
    assert "is the last admin" in resp.text and user("second@example.com").role == "admin"


def test_a_deactivated_admin_does_not_count(app, client, users):
    second = create_user("second@example.com", "password-123", Role.ADMIN)
    second.active = False
    db.session.commit()
    login(client, "admin@example.com")
    resp = client.post(f"/settings/users/{users['admin'].id}/role", data={"role": "editor"}, follow_redirects=True)
    assert "is the last admin" in resp.text


def test_deactivate_and_reactivate(app, client, users):
    editor = logged_in(app, "editor")
    login(client, "admin@example.com")
    uid = users["editor"].id
    resp = client.post(f"/settings/users/{uid}/active", follow_redirects=True)
    assert "can no longer log in" in resp.text and not user("editor@example.com").active
    assert editor.get("/").status_code == 302  # the open session ends too
    assert login(english_client(app), "editor@example.com").status_code == 401
    page = client.get("/settings").text
    assert re.search(rf'<tr id="user-{uid}">.*?Reactivate', page, re.S)
    client.post(f"/settings/users/{uid}/active")
    assert user("editor@example.com").active
    assert login(english_client(app), "editor@example.com").status_code == 302


def test_csrf_is_enforced(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user("admin@example.com", "password-123", Role.ADMIN)
        db.session.commit()
    c = english_client(app)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"email": "admin@example.com", "password": "password-123", "csrf_token": token})
    assert c.get("/settings").status_code == 200
    assert c.post("/settings", data=ORG).status_code == 400
    assert c.post("/settings/users/new", data={"email": "n@example.com", "password": "long-enough",
                                               "role": "admin"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "n@example.com")) is None
        assert db.session.get(Organisation, 1).timezone == "Asia/Shanghai"
