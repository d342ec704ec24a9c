"""What every JSON API view shares: the error type, role checks, body and query parsing, paging."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select

from ..extensions import db
from ..items import Invalid
from ..models import Role

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code for programs, words for people."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


def not_found(kind: str) -> ApiError:
    return ApiError(404, "not_found", _("No such %(kind)s.", kind=kind))


def require(role: Role) -> None:
    """Admins may do everything; otherwise the caller needs exactly this role."""
    if not current_user.can(role):
        raise ApiError(403, "forbidden", _("Your role (%(role)s) does not allow this.", role=current_user.role))


def json_body(allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object. Unknown fields are refused so a misspelt name is not silently ignored."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", _("Send the body as JSON (Content-Type: application/json)."))
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", _("The body must be a JSON object."))
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise Invalid({name: _("Unknown field.") for name in unknown})
    return data


# --- checking values ---------------------------------------------------------------------------

def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_text(data: dict, names: tuple[str, ...], errors: dict[str, str]) -> None:
    for name in names:
        if data.get(name) is not None and not isinstance(data[name], str):
            errors[name] = _("Must be a string.")


def check_id_list(data: dict, name: str, errors: dict[str, str]) -> list[int] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(is_int(v) for v in value):
        errors[name] = _("Must be a list of ids (integers).")
        return None
    return value


TIME_EXAMPLE = "2030-01-01T09:00:00+08:00"


def parse_time(value: Any, name: str, errors: dict[str, str]) -> datetime | None:
    """An ISO 8601 time WITH its offset. A naive time is refused: whose 9 o'clock would it be?"""
    if not isinstance(value, str):
        errors[name] = _("Give the time as an ISO 8601 string, e.g. %(example)s.", example=TIME_EXAMPLE)
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors[name] = _("Not a valid ISO 8601 time; use e.g. %(example)s.", example=TIME_EXAMPLE)
        return None
    if parsed.tzinfo is None:
        errors[name] = _("The time has no UTC offset. Add one, e.g. %(example)s, or Z for UTC.", example=TIME_EXAMPLE)
        return None
    return parsed


def int_arg(name: str, errors: dict[str, str], minimum: int = 1) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit() or int(raw) < minimum:
        errors[name] = _("Must be a whole number of at least %(min)d.", min=minimum)
        return None
    return int(raw)


def choice_arg(name: str, choices: type, errors: dict[str, str]) -> str | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw not in set(choices):
        errors[name] = _("Must be one of: %(choices)s.", choices=", ".join(choices))
        return None
    return raw


def time_arg(name: str, errors: dict[str, str]) -> datetime | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    # An unencoded "+08:00" in a URL arrives as " 08:00" (a + in a query string means a space).
    return parse_time(re.sub(r" (\d\d:?\d\d)$", r"+\1", raw), name, errors)


# --- paging ------------------------------------------------------------------------------------

@dataclass
class Paging:
    limit: int
    cursor: int | None
    page: int | None


def paging_args(errors: dict[str, str]) -> Paging:
    limit = int_arg("limit", errors) or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        errors["limit"] = _("At most %(max)d per page.", max=MAX_LIMIT)
    cursor = int_arg("cursor", errors)
    page = int_arg("page", errors)
    if cursor is not None and page is not None:
        errors["page"] = _("Use either cursor or page, not both.")
    return Paging(limit, cursor, page)


def paginate(query: Select, id_column, paging: Paging) -> tuple[list, dict[str, Any]]:
    """Newest first (highest id first). The cursor is the id of the last row returned: keyset
    paging stays correct while rows are added; page numbers are there for people."""
    if paging.cursor is not None:
        query = query.where(id_column < paging.cursor)
    query = query.order_by(id_column.desc()).limit(paging.limit + 1)
    if paging.page is not None:
        query = query.offset((paging.page - 1) * paging.limit)
    rows = list(db.session.scalars(query))
    more = len(rows) > paging.limit
    rows = rows[: paging.limit]
    meta: dict[str, Any] = {"limit": paging.limit, "next_cursor": str(rows[-1].id) if more else None}
    if paging.page is not None:
        meta["page"] = paging.page
        meta["next_page"] = paging.page + 1 if more else None
    return rows, meta
