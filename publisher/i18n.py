"""Languages (Simplified Chinese and English) and the organisation's timezone for every page."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, format_datetime, get_locale
from flask_login import current_user

LOCALES = ("zh_CN", "en")


def organisation():
    """The organisation row, created with defaults the first time it is needed."""
    from .extensions import db
    from .models import DEFAULT_ORGANISATION, Organisation

    if "organisation" not in g:
        org = db.session.get(Organisation, 1)
        if org is None:
            # The first migration inserts the row; if it is gone, start again from the defaults.
            # Added, not committed: it is saved with the request's own change, if there is one.
            org = Organisation(id=1, **DEFAULT_ORGANISATION)
            db.session.add(org)
        g.organisation = org
    return g.organisation


def select_locale() -> str:
    if not has_request_context():  # a worker, a command: the organisation's language
        return organisation().locale
    chosen = session.get("locale")
    if chosen in LOCALES:
        return chosen
    if current_user and current_user.is_authenticated and current_user.locale in LOCALES:
        return current_user.locale
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best:
        return "en" if best == "en" else "zh_CN"
    return organisation().locale


def select_timezone() -> str:
    return organisation().timezone


def org_zone() -> ZoneInfo:
    return ZoneInfo(organisation().timezone)


def localtime(value: datetime | None, fmt: str = "yyyy-MM-dd HH:mm:ss") -> str:
    """A UTC datetime shown in the organisation's timezone."""
    return format_datetime(value, fmt) if value else ""


def locale_code() -> str:
    """The active language as one of LOCALES (Babel spells zh_CN as zh_Hans_CN)."""
    return "zh_CN" if get_locale().language == "zh" else "en"


def init_i18n(app: Flask, babel: Babel) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.globals["locale_code"] = locale_code
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals["organisation"] = organisation
    app.jinja_env.globals["LOCALES"] = LOCALES
