"""Per-channel previews of an item: an HTML fragment for pages, and the same as JSON under /api.

The fragment (templates/web/previews/_previews.html) is what the item page includes. The JSON
route sits in this blueprint rather than in api.py's ROUTES, so it borrows the API's login check,
error format and rate limit explicitly below.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..extensions import db, limiter
from ..models import Item
from ..previews import previews
from .api import authenticate, error_response
from .api_common import ApiError, not_found

bp = Blueprint("previews", __name__)


@bp.get("/items/<int:item_id>/previews")
@login_required
def fragment(item_id: int):
    item = db.get_or_404(Item, item_id)
    return render_template("web/previews/_previews.html", previews=previews(item))


def _caller_key() -> str:
    # As api.py counts: one budget per logged-in user, by address otherwise.
    return f"api-user-{current_user.id}" if current_user.is_authenticated else request.remote_addr or "unknown"


@bp.get("/api/items/<int:item_id>/previews")
@limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_caller_key)
def api_previews(item_id: int):
    authenticate()  # a session or a bearer token, as for every /api route
    item = db.session.get(Item, item_id)
    if item is None:
        raise not_found(_("item"))
    return jsonify(data=[p.as_json() for p in previews(item)])


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.fields)
