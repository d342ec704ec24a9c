"""Fixtures: a real database (SQLite file, or PostgreSQL when PUBLISHER_DATABASE_URL is set),
a real Redis (the embedded server, or PUBLISHER_REDIS_URL), real RQ workers and real HTTP
doubles for channels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, insert, text, update
from werkzeug.serving import make_server

from publisher import create_app, embedded_redis
from publisher.extensions import db
from publisher.migrate import upgrade
from publisher.models import DEFAULT_ORGANISATION, Organisation
from tests.doubles import Double, WebhookDouble

REPO = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-for-the-suite"


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def redis_url(instance_dir):
    url = os.environ.get("PUBLISHER_REDIS_URL")
    if url:
        yield url
        return
    yield embedded_redis.ensure(instance_dir)
    embedded_redis.stop(instance_dir)


@pytest.fixture(scope="session")
def database_url(instance_dir) -> str:
    url = os.environ.get("PUBLISHER_DATABASE_URL")
    if not url:
        return f"sqlite:///{instance_dir / 'test.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean slate, so the migrations run from nothing
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def base_config(instance_dir, database_url, redis_url) -> dict:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(instance_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET,
        "QUEUE": "test",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "TICK_SECONDS": 0.05,
        "RETRY_BASE_SECONDS": 0.2,
        "RETRY_MAX_SECONDS": 1.0,
        "QUEUED_LEASE_SECONDS": 2.0,
        "LEASE_MARGIN_SECONDS": 1.0,
        "BASE_URL": "http://127.0.0.1:5000",
    }


@pytest.fixture(scope="session")
def _migrated(base_config):
    app = create_app(dict(base_config))
    upgrade(app)
    with app.app_context():
        _test_organisation(app)


def _test_organisation(app) -> None:
    """Approval is on by default in production; most tests are about what happens after it, so
    they start with it off (the workflow tests switch it on). Work outside a request speaks the
    organisation's language: English here, so assertions read English; zh_CN is tested on purpose."""
    with db.engine.begin() as conn:
        conn.execute(update(Organisation).where(Organisation.id == 1).values(require_approval=False, locale="en"))


def _clean(app) -> None:
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))
            # Every test starts like a freshly migrated database: with the organisation's default row.
            conn.execute(insert(Organisation).values(id=1, **DEFAULT_ORGANISATION))
        _test_organisation(app)
        from workers.queues import get_redis

        get_redis().flushdb()


@pytest.fixture
def make_app(base_config, _migrated):
    """Build an app with extra settings; the database and Redis are emptied afterwards."""
    apps = []

    def make(**overrides):
        app = create_app({**base_config, **overrides})
        apps.append(app)
        return app

    yield make
    if apps:
        _clean(apps[0])
        for app in apps:
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        yield app


class IsolatedClient(FlaskClient):
    """Each request in an app context of its own, as in production: Flask's g (the logged-in user,
    the organisation, the locale) does not carry over from one request to the next. The test reads
    the database through its own session: expire it (db.session.expire_all()) to see what a
    request wrote."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # assertions read English; zh_CN is tested on purpose
    return client


@pytest.fixture
def users(app):
    """admin, editor and reviewer accounts; password is 'password-123'."""
    from publisher.models import Role
    from publisher.security import create_user

    made = {role.value: create_user(f"{role.value}@example.com", "password-123", role) for role in Role}
    db.session.commit()
    return made


def login(client, email: str, password: str = "password-123"):
    return client.post("/login", data={"email": email, "password": password})


@pytest.fixture
def drain(app):
    """Run every queued job with a real RQ SimpleWorker in this process, and every send they hand
    to the worker's send pool, then return."""
    from rq import SimpleWorker

    from workers.jobs import close_pool
    from workers.queues import delivery_queue, get_redis

    def run():
        SimpleWorker([delivery_queue()], connection=get_redis()).work(burst=True, with_scheduler=False)
        close_pool(app, finish=True)

    return run


@pytest.fixture
def double():
    d = Double()
    yield d
    d.close()


@pytest.fixture
def webhook_double():
    d = WebhookDouble("hook-secret")
    yield d
    d.close()


def service_env(config: dict) -> dict:
    """The environment that makes a `publisher` subprocess use the test's database and Redis."""
    env = dict(os.environ)
    for key, value in config.items():
        if key in {"TESTING", "WTF_CSRF_ENABLED", "RATELIMIT_ENABLED"}:
            continue
        env[f"PUBLISHER_{key}"] = str(value)
    env["PYTHONPATH"] = str(REPO)
    return env


class Processes:
    """`publisher` subprocesses (worker, scheduler …) that a test starts; all stopped at the end."""

    def __init__(self, config: dict):
        self.env = service_env(config)
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "publisher", *args], env=self.env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def processes(base_config):
    procs = Processes(base_config)
    yield procs
    procs.stop_all()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail with the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# --- browser tests: Debian's chromium driven by Playwright against the app on 127.0.0.1 -------------
# They skip only when no chromium is installed and we are not in CI; in CI a missing browser fails.

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
