"""Public calendar subscriptions at secret-token addresses (see publisher/ics.py).

No login: calendar apps cannot log in. The token in the address is the only key, so it is compared
in constant time, a wrong one is simply "not found", and "New link" on the dashboard or the column
page replaces it.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import select

from .. import ics
from ..extensions import db, limiter
from ..i18n import organisation
from ..models import Column

bp = Blueprint("ics", __name__, url_prefix="/ics")
CONTENT_TYPE = "text/calendar; charset=utf-8"


def _answer(body: bytes, filename: str) -> Response:
    response = Response(body, content_type=CONTENT_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def _open_slots() -> bool:
    return request.args.get("slots") != "0"  # ?slots=0 leaves the open slots out


@bp.get("/<token>.ics")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def organisation_calendar(token: str):
    org = organisation()
    if not hmac.compare_digest(token.encode(), org.ics_token.encode()):
        abort(404)
    body = ics.build(org.name, org.timezone, current_app.config["BASE_URL"], open_slots=_open_slots())
    return _answer(body, "calendar")


@bp.get("/columns/<slug>/<token>.ics")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def column_calendar(slug: str, token: str):
    column = db.session.scalar(select(Column).where(Column.slug == slug))
    # Compare even when there is no such column, so the answer's timing says nothing about slugs.
    expected = column.ics_token if column is not None else "-" * 32
    if not hmac.compare_digest(token.encode(), expected.encode()) or column is None:
        abort(404)
    body = ics.build(f"{organisation().name} · {column.name}", column.timezone, current_app.config["BASE_URL"],
                     column=column, open_slots=_open_slots())
    return _answer(body, column.slug)
