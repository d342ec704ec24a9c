"""The editors' calendar: a FullCalendar page and the JSON events it loads.

The front end lives in the top-level calendar/ folder (templates, our JS and CSS, and FullCalendar
from npm in calendar/node_modules). No Python may live there: a top-level `calendar` package would
shadow the standard library (see docs/architecture.md), hence this module's name.

Times: FullCalendar cannot show a named timezone without extra plugins, so the events carry the
organisation's wall-clock time without an offset and the page runs FullCalendar in 'UTC', which
shows them unchanged whatever the browser's zone. The range FullCalendar asks for is read back the
same way: org-local wall-clock.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, jsonify, render_template, request, send_from_directory
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from sqlalchemy import Select, select

from ..config import REPO_ROOT
from ..extensions import db
from ..i18n import org_zone
from ..models import Channel, Column, Delivery, DeliveryStatus, Item, Origin

CALENDAR_ROOT = REPO_ROOT / "calendar"
NODE_MODULES = CALENDAR_ROOT / "node_modules"
# The only files of node_modules the app serves; anything else there stays private.
VENDOR_FILES = frozenset({
    "fullcalendar/index.global.min.js",
    "@fullcalendar/core/locales/zh-cn.global.min.js",
})
MAX_RANGE = timedelta(days=100)  # a month view asks for 6 weeks; more is a mistake or a scraper
NO_COLUMN = "none"  # the column filter's value for items without a column
NO_COLUMN_COLOR = "#9ca3af"
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")

STATUS_LABELS = {
    DeliveryStatus.SCHEDULED: _l("Scheduled"),
    DeliveryStatus.QUEUED: _l("Queued"),
    DeliveryStatus.SENDING: _l("Sending"),
    DeliveryStatus.SENT: _l("Sent"),
    DeliveryStatus.FAILED: _l("Failed"),
    DeliveryStatus.UNCONFIRMED: _l("Unconfirmed"),
    DeliveryStatus.CANCELLED: _l("Cancelled"),
}
ORIGIN_LABELS = {Origin.PGC: _l("Editorial (PGC)"), Origin.UGC: _l("Community (UGC)")}

# static_url_path is relative to url_prefix: "/static" serves our files at /calendar/static/….
bp = Blueprint(
    "calendar", __name__, root_path=str(CALENDAR_ROOT), template_folder="templates",
    static_folder="static", static_url_path="/static", url_prefix="/calendar",
)


@bp.get("")
@login_required
def index():
    columns = [{"id": c.id, "name": c.name, "color": _color(c.color)}
               for c in db.session.execute(select(Column.id, Column.name, Column.color).order_by(Column.name))]
    channels = db.session.execute(select(Channel.id, Channel.name).order_by(Channel.name)).all()
    # FullCalendar's English is built in; Chinese comes from its zh-cn locale file.
    # (Babel reads "zh_CN" as zh_Hans_CN, so compare the language.)
    fc_locale = "zh-cn" if get_locale().language == "zh" else "en"
    return render_template(
        "calendar/index.html", fc_locale=fc_locale, columns=columns, channels=channels, no_column=NO_COLUMN,
        no_column_color=NO_COLUMN_COLOR, statuses=STATUS_LABELS, origins=ORIGIN_LABELS,
    )


@bp.get("/vendor/<path:name>")
def vendor(name: str):
    # Public like the app's other static files (it is published open-source code). The
    # allow-list is the whole guard: "../package.json" and every other path is a plain 404.
    if name not in VENDOR_FILES:
        abort(404)
    return send_from_directory(NODE_MODULES, name)


class BadRequest(Exception):
    """A parameter the events endpoint cannot use; the message is in the user's language."""


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return jsonify(error=str(exc)), 400


@bp.get("/events")
@login_required
def events():
    zone = org_zone()
    start = _wall_clock(request.args.get("start"), _("The start of the range is missing."), zone)
    end = _wall_clock(request.args.get("end"), _("The end of the range is missing."), zone)
    if end <= start:
        raise BadRequest(_("The end of the range must come after its start."))
    if end - start > MAX_RANGE:
        raise BadRequest(_("The range is too long: at most %(days)d days at a time.", days=MAX_RANGE.days))
    rows = db.session.execute(_filtered(_query(start, end))).all()
    texts = _texts()
    groups = groupby(rows, key=lambda r: (r.item_id, r.due_at))
    return jsonify([_event(key, list(group), zone, texts) for key, group in groups])


def _wall_clock(raw: str | None, missing: str, zone: ZoneInfo) -> datetime:
    """An ISO date or date-time read as the organisation's wall-clock time, returned in UTC.

    Any offset is dropped on purpose: FullCalendar runs in 'UTC' here and sends "…Z" for what
    is really org-local time (see the module docstring).
    """
    if not raw:
        raise BadRequest(missing)
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(_("%(value)s is not a date (expected e.g. 2030-03-01T00:00:00).", value=raw)) from None


def _query(start: datetime, end: datetime) -> Select:
    # One query of plain columns (no ORM objects, no lazy loads): the calendar may show thousands.
    return (
        select(
            Delivery.item_id, Delivery.due_at, Delivery.status, Delivery.channel_id,
            Channel.name.label("channel_name"), Item.title, Item.origin, Item.format,
            Item.column_id, Column.name.label("column_name"), Column.color.label("column_color"),
        )
        .join(Item, Delivery.item_id == Item.id)
        .join(Channel, Delivery.channel_id == Channel.id)
        .outerjoin(Column, Item.column_id == Column.id)
        .where(Delivery.due_at >= start, Delivery.due_at < end)
        .order_by(Delivery.item_id, Delivery.due_at, Channel.name, Delivery.id)
    )


def _filtered(stmt: Select) -> Select:
    """Narrow to the chosen columns, channels, statuses and origins (each may repeat: any of them).

    Filters apply to deliveries: with a channel chosen, an item's event lists that channel only.
    """
    columns = request.args.getlist("column")
    if columns:
        _check(columns, lambda v: v.isdigit() or v == NO_COLUMN, _("Unknown column: %(values)s"))
        wanted = Item.column_id.in_([int(v) for v in columns if v.isdigit()])
        stmt = stmt.where(wanted | Item.column_id.is_(None) if NO_COLUMN in columns else wanted)
    channels = request.args.getlist("channel")
    if channels:
        _check(channels, str.isdigit, _("Unknown channel: %(values)s"))
        stmt = stmt.where(Delivery.channel_id.in_([int(v) for v in channels]))
    statuses = request.args.getlist("status")
    if statuses:
        _check(statuses, lambda v: v in STATUS_LABELS, _("Unknown delivery status: %(values)s"))
        stmt = stmt.where(Delivery.status.in_(statuses))
    origins = request.args.getlist("origin")
    if origins:
        _check(origins, lambda v: v in ORIGIN_LABELS, _("Unknown origin: %(values)s"))
        stmt = stmt.where(Item.origin.in_(origins))
    return stmt


def _check(values: list[str], valid: Callable[[str], bool], message: str) -> None:
    bad = [v for v in values if not valid(v)]
    if bad:
        raise BadRequest(message % {"values": ", ".join(bad)})


@dataclass(frozen=True)
class _Texts:
    """Translated once per request: thousands of events would otherwise mean a gettext call each."""

    labels: dict[str, str]  # status -> its name
    sent: str  # "%(sent)d/%(total)d sent"
    counts: dict[str, str]  # status that needs an editor's eye -> "%(n)d failed" …


def _texts() -> _Texts:
    return _Texts(
        labels={status: str(label) for status, label in STATUS_LABELS.items()},
        sent=_("%(sent)d/%(total)d sent"),
        counts={
            DeliveryStatus.FAILED: _("%(n)d failed"),
            DeliveryStatus.UNCONFIRMED: _("%(n)d to check"),
            DeliveryStatus.CANCELLED: _("%(n)d cancelled"),
        },
    )


def _event(key: tuple[int, datetime], rows: list, zone: ZoneInfo, texts: _Texts) -> dict:
    """One event per item per due time: its deliveries on every channel, summarised."""
    item_id, due_at = key
    first = rows[0]
    color = _color(first.column_color)
    counts = Counter(r.status for r in rows)
    summary = _summary(counts, len(rows), texts)
    local = due_at.astimezone(zone).replace(tzinfo=None)  # wall-clock, no offset: see the docstring
    return {
        "id": f"{item_id}@{due_at.isoformat()}",
        "title": f"{first.title} · {summary}",
        "start": local.isoformat(timespec="seconds"),
        "url": f"/items/{item_id}",
        "backgroundColor": color,
        "borderColor": color,
        "classNames": ["pub-problem"] if counts[DeliveryStatus.FAILED] or counts[DeliveryStatus.UNCONFIRMED] else [],
        "extendedProps": {
            "itemId": item_id,
            "itemTitle": first.title,
            "summary": summary,
            "column": {"id": first.column_id, "name": first.column_name, "color": color}
            if first.column_id is not None else None,
            "origin": first.origin,
            "format": first.format,
            "deliveries": [
                {"channelId": r.channel_id, "channel": r.channel_name, "status": r.status,
                 "statusLabel": texts.labels.get(r.status, r.status)}
                for r in rows
            ],
        },
    }


def _color(value: str | None) -> str:
    # Colours end up in style attributes: only a plain hex colour gets there.
    return value if value and HEX_COLOR.fullmatch(value) else NO_COLUMN_COLOR


def _summary(counts: Counter, total: int, texts: _Texts) -> str:
    """"2/3 sent", then what needs an editor's eye: "2/3 sent, 1 failed"."""
    parts = [texts.sent % {"sent": counts[DeliveryStatus.SENT], "total": total}]
    parts += [text % {"n": counts[status]} for status, text in texts.counts.items() if counts[status]]
    return ", ".join(parts)
