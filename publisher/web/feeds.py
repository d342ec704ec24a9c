"""Public RSS and Atom feeds: the whole organisation (/feeds/all.*) and each column.

An item is in a feed once its delivery to a channel of type "feed" was sent. Feed readers poll
often, so every answer carries an ETag and Last-Modified, and an unchanged feed costs one
aggregate query and a 304.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, current_app, request
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.http import is_resource_modified

from channels import registry

from .. import feeds
from ..extensions import db, limiter
from ..i18n import organisation
from ..models import Channel, Column, Delivery, DeliveryStatus, Item
from ..posts import build_post, public_url

bp = Blueprint("feeds", __name__)

ALL = "all"  # the organisation-wide feed; a column with this slug would be hidden behind it
KINDS = {
    "rss": ("application/rss+xml; charset=utf-8", feeds.rss),
    "atom": ("application/atom+xml; charset=utf-8", feeds.atom),
}
MAX_AGE = 300


def _published():
    """(item id, first time it went out on a feed channel) for every item in the feeds."""
    return (
        select(Delivery.item_id, func.min(Delivery.sent_at).label("published"))
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Channel.type == "feed", Delivery.status == DeliveryStatus.SENT, Delivery.sent_at.is_not(None))
        .group_by(Delivery.item_id)
        .subquery()
    )


def _in_column(stmt, column: Column | None):
    return stmt if column is None else stmt.where(Item.column_id == column.id)


def _state(column: Column | None) -> tuple[int, datetime | None, datetime | None]:
    """How many entries, the newest publication and the newest edit: enough to tell if anything changed."""
    pub = _published()
    stmt = (select(func.count(), func.max(pub.c.published), func.max(Item.updated_at))
            .join(Item, Item.id == pub.c.item_id))
    count, newest_published, newest_edit = db.session.execute(_in_column(stmt, column)).one()
    return count, newest_published, newest_edit


def _entries(column: Column | None) -> list[feeds.FeedEntry]:
    pub = _published()
    stmt = (
        select(Item, pub.c.published)
        .join(pub, pub.c.item_id == Item.id)
        .order_by(pub.c.published.desc(), Item.id.desc())
        .limit(feeds.MAX_ENTRIES)
        .options(joinedload(Item.column), joinedload(Item.author), joinedload(Item.cover), joinedload(Item.file),
                 selectinload(Item.media))
    )
    rows = db.session.execute(_in_column(stmt, column)).all()
    feed = registry.get("feed")({})
    return [
        feeds.FeedEntry(
            url=public_url(item),
            title=item.title,
            html=feed.render(build_post(item)).payload["html"],  # what the feed channel publishes
            published=published,
            updated=item.updated_at,
            author=item.author.name if item.author else "",
            column_slug=item.column.slug if item.column else "",
            column_name=item.column.name if item.column else "",
        )
        for item, published in rows
    ]


@bp.get("/feeds/<slug>.<kind>")
@limiter.limit(lambda: current_app.config["PUBLIC_RATE_LIMIT"])
def feed(slug: str, kind: str):
    if kind not in KINDS:
        abort(404)
    column = None
    if slug != ALL:
        column = db.session.scalar(select(Column).where(Column.slug == slug))
        if column is None:
            abort(404)
    org = organisation()
    base = current_app.config["BASE_URL"].rstrip("/")
    count, newest_published, newest_edit = _state(column)
    updated = max((t for t in (newest_published, newest_edit) if t is not None), default=org.created_at)
    # Entries show their column's brand kit and event times in the organisation's zone: a change
    # to either changes the feed without any item changing.
    brand = select(Column.id, Column.intro, Column.signoff, Column.hashtags, Column.cover_id).order_by(Column.id)
    brands = db.session.execute(brand.where(Column.id == column.id) if column else brand).all()
    etag = feeds.version_tag(kind, slug, column.name if column else "", column.description if column else "",
                             org.name, org.locale, org.timezone, base, count, newest_published, newest_edit,
                             [tuple(b) for b in brands])
    content_type, build = KINDS[kind]

    def headers(resp: Response) -> Response:
        resp.set_etag(etag)
        resp.last_modified = updated
        resp.cache_control.public = True
        resp.cache_control.max_age = MAX_AGE
        return resp

    if not is_resource_modified(request.environ, etag=etag, last_modified=updated):
        return headers(Response(status=304))

    # In the organisation's language whoever asks: one URL, one document (and one ETag).
    with force_locale(org.locale):
        if column is None:
            title = org.name
            description = _("Everything %(name)s published", name=org.name)
            archive = f"{base}/archive"
        else:
            title = f"{column.name} · {org.name}"
            description = column.description or _("The column %(name)s of %(org)s", name=column.name, org=org.name)
            archive = f"{base}/archive?column={column.slug}"
    info = feeds.FeedInfo(
        title=title, description=description, locale=org.locale, author=org.name,
        self_url=f"{base}/feeds/{slug}.{kind}", alternate_url=archive, updated=updated,
    )
    return headers(Response(build(info, _entries(column)), content_type=content_type))
