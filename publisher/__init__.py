"""publisher: content planning and multi-channel publishing for enterprise communities."""

from __future__ import annotations

import logging

from flask import Flask

from . import config as config_module
from . import embedded_redis
from .extensions import babel, csrf, db, limiter, login_manager


def create_app(config: dict | None = None) -> Flask:
    conf = config_module.load(config)
    app = Flask(
        __name__,
        instance_path=str(conf["INSTANCE_PATH"]),
        template_folder=str(config_module.REPO_ROOT / "templates"),
    )
    app.config.update(conf)
    app.json.sort_keys = False  # sorting every object's keys costs ~10% of a large JSON answer
    if not app.config["REDIS_URL"]:
        app.config["REDIS_URL"] = embedded_redis.ensure(app.instance_path)

    url = app.config["DATABASE_URL"]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        # Several processes share the file: wait for the writer instead of failing at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    else:
        # A server that accepts and never answers must not hang every page: give up after 5 s.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True, "pool_size": 5, "max_overflow": 10, "connect_args": {"connect_timeout": 5},
        }
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None (unlimited)
        app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024  # the media upload views allow more
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["RATELIMIT_STORAGE_URI"] = _limits_uri(app.config["REDIS_URL"])
    app.config["RATELIMIT_HEADERS_ENABLED"] = True  # Retry-After on 429, so clients know how long to wait
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # a Redis outage must not take the site down
    app.config["RATELIMIT_KEY_PREFIX"] = f"{app.config['QUEUE']}-limits"

    db.init_app(app)
    _sqlite_pragmas(app)
    from channels.registry import share_token_cache
    from workers.queues import SharedCache

    from . import calendar_cache  # noqa: F401  (its session listeners keep the calendar's cache honest)

    share_token_cache(SharedCache(app.config["REDIS_URL"]))

    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    from .i18n import init_i18n

    init_i18n(app, babel)

    from .web import register_blueprints

    register_blueprints(app)
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # urllib3 logs every request's URL at DEBUG, and several services put the credential in the
    # URL (a WeCom robot's key, a Telegram bot's token): never, whatever the root level.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
    return app


def _limits_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def _sqlite_pragmas(app: Flask) -> None:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    with app.app_context():

        @event.listens_for(db.engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # WAL lets the web pages read while a worker writes; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
