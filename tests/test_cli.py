"""The `publisher` command, run as an operator runs it: a subprocess on the test's database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import request
from sqlalchemy import create_engine, inspect, select, text

from publisher.extensions import db
from publisher.models import ApiToken, User
from publisher.security import check_password, load_user_from_token
from tests.conftest import REPO, service_env


@pytest.fixture
def run(app, base_config):
    """Run `python -m publisher …` with the test's database and Redis (app migrates them)."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "publisher", *args], env={**service_env(base_config), **env},
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    return run


def users_by_email() -> dict[str, User]:
    db.session.rollback()
    return {u.email: u for u in db.session.scalars(select(User))}


def test_users_create(run):
    made = run("users", "create", "--email", " Ann@Example.com ", "--role", "admin",
               PUBLISHER_NEW_PASSWORD="a long password")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin ann@example.com"
    ann = users_by_email()["ann@example.com"]
    assert ann.role == "admin" and check_password(ann, "a long password")

    again = run("users", "create", "--email", "ann@example.com", PUBLISHER_NEW_PASSWORD="another password")
    assert again.returncode != 0
    assert "a user with the e-mail ann@example.com already exists" in again.stderr
    assert "Traceback" not in again.stderr

    short = run("users", "create", "--email", "bob@example.com", PUBLISHER_NEW_PASSWORD="short")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    assert set(users_by_email()) == {"ann@example.com"}


def test_tokens_create_prints_the_token_once_and_stores_its_hash(app, users, run):
    made = run("tokens", "create", "--email", "Editor@example.com", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("pub_") and made.stdout.count(token) == 1
    assert token not in made.stderr and "cannot be shown again" in made.stderr

    db.session.rollback()
    (row,) = db.session.scalars(select(ApiToken))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.name == "ci"
    assert row.prefix == token[:10]
    stored = db.session.execute(text("SELECT * FROM api_tokens")).one()
    assert not any(token in str(value) for value in stored)  # only the hash is kept
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        assert load_user_from_token(request) == users["editor"]

    unknown = run("tokens", "create", "--email", "nobody@example.com")
    assert unknown.returncode != 0 and "no user nobody@example.com" in unknown.stderr


def test_db_upgrade_is_idempotent(run, tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        done = run("db", "upgrade", PUBLISHER_DATABASE_URL=fresh, PUBLISHER_INSTANCE_PATH=str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "database is up to date"
    engine = create_engine(fresh)
    try:
        assert {"users", "items", "deliveries", "delivery_events"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert len(conn.execute(text("SELECT version_num FROM alembic_version")).all()) == 1
    finally:
        engine.dispose()
    # and on the configured database, which the suite has migrated already
    done = run("db", "upgrade")
    assert done.returncode == 0, done.stderr


def plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_") and k != "PYTHONPATH"}


def test_help_works_from_the_repo_root():
    # `python -m` puts the current folder first on sys.path: the repository root must not shadow
    # a standard module (calendar/ holds no Python; see tests/test_layout.py).
    shown = subprocess.run([sys.executable, "-m", "publisher", "--help"], cwd=REPO, env=plain_env(),
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    for command in ("up", "web", "worker", "scheduler", "db", "users", "tokens"):
        assert f"  {command} " in shown.stdout

    script = Path(sys.executable).parent / "publisher"  # the console script `make install` installs
    shown = subprocess.run([str(script), "--help"], cwd=REPO, env=plain_env(), capture_output=True, text=True,
                           timeout=30)
    assert shown.returncode == 0, shown.stderr


def test_standard_library_is_not_shadowed_from_the_repo_root():
    code = (
        "import calendar, datetime, sysconfig\n"
        "datetime.datetime.strptime('2024', '%Y')\n"
        "import requests, dateutil.parser, zoneinfo, http.cookiejar\n"
        "assert calendar.__file__.startswith(sysconfig.get_paths()['stdlib']), calendar.__file__\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=plain_env(), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
