"""The public archive: every published item, newest first, and a page for each."""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ..extensions import db, limiter
from ..markup import to_html
from ..models import Column, Format, Item, ItemStatus

bp = Blueprint("archive", __name__)

PER_PAGE = 20
FORMAT_LABELS = {
    Format.ARTICLE: _l("Article"),
    Format.IMAGE: _l("Image"),
    Format.VIDEO: _l("Video"),
    Format.AUDIO: _l("Audio"),
    Format.EVENT: _l("Event"),
}


@bp.context_processor
def _helpers() -> dict:
    return {"swatch": swatch}


def swatch(color: str | None) -> str:
    """A column's colour for a style attribute, or nothing if it is not a plain hex colour."""
    return color if color and re.fullmatch(r"#[0-9a-fA-F]{3,8}", color) else "transparent"


def _published_on():
    # Items published before published_at was recorded still sort by something meaningful.
    return func.coalesce(Item.published_at, Item.updated_at)


@bp.get("/archive")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def index():
    column = None
    slug = request.args.get("column", "").strip()
    if slug:
        column = db.session.scalar(select(Column).where(Column.slug == slug))
        if column is None:
            abort(404)
    stmt = select(Item).where(Item.status == ItemStatus.PUBLISHED).options(joinedload(Item.column))
    if column is not None:
        stmt = stmt.where(Item.column_id == column.id)
    page = db.paginate(stmt.order_by(_published_on().desc(), Item.id.desc()),
                       page=request.args.get("page", 1, type=int), per_page=PER_PAGE, max_per_page=PER_PAGE)
    columns = db.session.scalars(select(Column).order_by(Column.name)).all()
    return render_template("web/archive/index.html", page=page, column=column, columns=columns,
                           formats=FORMAT_LABELS)


@bp.get("/archive/<int:item_id>")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def show(item_id: int):
    item = db.session.get(Item, item_id)
    if item is None or item.status != ItemStatus.PUBLISHED:
        abort(404)
    return render_template("web/archive/show.html", item=item, body=to_html(item.body), formats=FORMAT_LABELS)
