"""The JSON API at /api: its routes, who may call it, and how it answers when something is wrong.

Callers are a logged-in browser session or an `Authorization: Bearer <token>` header. A session
that writes must send the page's CSRF token in `X-CSRFToken` (a cookie alone proves nothing);
a bearer token cannot be sent by another site, so token calls need none. docs/api.md explains it
for users; publisher/web/openapi.py describes every route.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from ..extensions import csrf, db, limiter, login_manager
from ..items import Invalid
from ..media import MAX_UPLOAD, MB
from ..security import load_user_from_token
from . import api_calendar, api_channels, api_columns, api_deliveries, api_items, api_media
from .api_common import ApiError
from .openapi import document
from .queue import api_queue

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # checked below, for session callers only

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# (rule, endpoint, view, methods). Endpoints are what url_for and the OpenAPI operationIds use.
ROUTES = (
    ("/items", "items", api_items.list_items, ["GET"]),
    ("/items", "item_create", api_items.create, ["POST"]),
    ("/items/<int:item_id>", "item", api_items.get_item, ["GET"]),
    ("/items/<int:item_id>", "item_update", api_items.update, ["PATCH"]),
    ("/items/<int:item_id>", "item_delete", api_items.delete, ["DELETE"]),
    ("/items/<int:item_id>/deliveries", "item_deliveries", api_items.list_deliveries, ["GET"]),
    ("/items/<int:item_id>/deliveries", "item_schedule", api_items.schedule_more, ["POST"]),
    ("/items/<int:item_id>/submit", "item_submit", api_items.submit, ["POST"]),
    ("/items/<int:item_id>/approve", "item_approve", api_items.approve, ["POST"]),
    ("/items/<int:item_id>/send-back", "item_send_back", api_items.send_back, ["POST"]),
    ("/items/<int:item_id>/republish", "item_republish", api_items.republish, ["POST"]),
    ("/items/<int:item_id>/history", "item_history", api_items.history, ["GET"]),
    ("/media", "media", api_media.list_media, ["GET"]),
    ("/media", "media_upload", api_media.upload, ["POST"]),
    ("/media/<int:media_id>", "media_item", api_media.get_media, ["GET"]),
    ("/media/<int:media_id>", "media_delete", api_media.delete, ["DELETE"]),
    ("/calendar/events", "calendar_events", api_calendar.events, ["GET"]),
    ("/calendar/items/<int:item_id>/move", "calendar_move", api_calendar.move, ["POST"]),
    ("/calendar/slots/fill", "calendar_fill", api_calendar.fill, ["POST"]),
    ("/channels", "channels", api_channels.list_channels, ["GET"]),
    ("/channels", "channel_create", api_channels.create, ["POST"]),
    ("/channels/<int:channel_id>", "channel", api_channels.get_channel, ["GET"]),
    ("/channels/<int:channel_id>", "channel_update", api_channels.update, ["PATCH"]),
    ("/channels/<int:channel_id>", "channel_delete", api_channels.delete, ["DELETE"]),
    ("/channel-types", "channel_types", api_channels.channel_types, ["GET"]),
    ("/columns", "columns", api_columns.list_columns, ["GET"]),
    ("/columns", "column_create", api_columns.create, ["POST"]),
    ("/columns/<int:column_id>", "column", api_columns.get_column, ["GET"]),
    ("/columns/<int:column_id>", "column_update", api_columns.update, ["PATCH"]),
    ("/columns/<int:column_id>", "column_delete", api_columns.delete, ["DELETE"]),
    ("/columns/<int:column_id>/slots", "column_slots", api_columns.column_slots, ["GET"]),
    ("/columns/<int:column_id>/slots", "column_fill", api_columns.fill, ["POST"]),
    ("/slots", "slots", api_columns.all_slots, ["GET"]),
    ("/deliveries", "deliveries", api_deliveries.list_deliveries, ["GET"]),
    ("/deliveries/<int:delivery_id>", "delivery", api_deliveries.get_delivery, ["GET"]),
    ("/deliveries/<int:delivery_id>/cancel", "delivery_cancel", api_deliveries.cancel, ["POST"]),
    ("/deliveries/<int:delivery_id>/retry", "delivery_retry", api_deliveries.retry, ["POST"]),
    ("/deliveries/<int:delivery_id>/mark-sent", "delivery_mark_sent", api_deliveries.mark_sent, ["POST"]),
    ("/queue", "queue", api_queue, ["GET"]),
)
for _rule, _endpoint, _view, _methods in ROUTES:
    bp.add_url_rule(_rule, _endpoint, _view, methods=_methods)


def _caller_key() -> str:
    # One budget per user, however many tokens or sessions they use; by address before login.
    if current_user.is_authenticated:
        return f"api-user-{current_user.id}"
    return request.remote_addr or "unknown"


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_caller_key)(bp)


@bp.get("/openapi.json")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def openapi():
    """Public, so that tools can read it before anyone has a token."""
    return jsonify(document())


@bp.before_request
def authenticate() -> None:
    if request.endpoint == "api.openapi":
        return
    if request.endpoint == "api.media_upload":  # before anything reads the body (the CSRF check does)
        request.max_content_length = MAX_UPLOAD + MB
    if "Authorization" in request.headers:
        # A request that brings a token is judged by the token alone, whatever cookie came along.
        user = load_user_from_token(request)
        if user is None:
            raise ApiError(401, "invalid_token", _("The API token is unknown or revoked, or its user is switched off."))
        login_manager._update_request_context_with_user(user)  # Flask-Login's per-request user
        return
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", _("Log in, or send an API token: Authorization: Bearer <token>."))
    if request.method in UNSAFE_METHODS and current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()


# --- errors: always {"error": {"code", "message", "fields"}} ------------------------------------

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited",
}


def error_response(status: int, code: str, message: str, fields: dict[str, str] | None = None):
    db.session.rollback()  # bad input changes nothing
    return jsonify(error={"code": code, "message": message, "fields": fields or {}}), status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.fields)


@bp.errorhandler(Invalid)
def _invalid(exc: Invalid):
    return error_response(400, "validation_error", _("Some fields are not valid."), exc.errors)


@bp.errorhandler(StaleDataError)
def _stale(_exc: StaleDataError):
    return error_response(409, "conflict", _("Someone changed this at the same moment. Load it again and retry."))


@bp.errorhandler(CSRFError)
def _csrf(_exc: CSRFError):
    return error_response(400, "csrf_failed", _("A call from a logged-in page must send the page's CSRF token "
                                                "in the X-CSRFToken header. Reload the page and try again."))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    status = exc.code or 500
    messages = {
        404: _("There is nothing at this address."),
        405: _("This address does not accept the %(method)s method.", method=request.method),
        413: _("The request body is too large."),
        429: _("Too many requests. Wait a little and try again."),
        500: _("Something went wrong on the server. Try again; if it keeps happening, tell an administrator."),
    }
    return error_response(status, HTTP_CODES.get(status, "server_error" if status >= 500 else "bad_request"),
                          messages.get(status, _("The request could not be handled.")))


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _unrouted(exc: HTTPException):
    """URLs under /api that match no route: routing fails before any blueprint is chosen."""
    if request.path == bp.url_prefix or request.path.startswith(f"{bp.url_prefix}/"):
        return _http(exc)
    return exc
