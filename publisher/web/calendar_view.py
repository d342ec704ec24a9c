"""The editors' calendar: a FullCalendar page (its events come from /api/calendar, api_calendar.py).

The front end lives in the top-level calendar/ folder (templates, our JS and CSS, and FullCalendar
from npm in calendar/node_modules). No Python may live there: a top-level `calendar` package would
shadow the standard library (see docs/architecture.md), hence this module's name.

Times: the events carry the organisation's wall-clock time without an offset and the page runs
FullCalendar in 'UTC' (see api_calendar.py and calendar/static/calendar.js).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, send_from_directory, url_for
from flask_babel import get_locale
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import schedule
from ..config import REPO_ROOT
from ..extensions import db
from ..models import Channel, Column, Role
from .api_calendar import ITEM_STATUS_LABELS, NO_COLUMN, NO_COLUMN_COLOR, ORIGIN_LABELS, color

CALENDAR_ROOT = REPO_ROOT / "calendar"
NODE_MODULES = CALENDAR_ROOT / "node_modules"
# The only files of node_modules the app serves; anything else there stays private.
VENDOR_FILES = frozenset({
    "fullcalendar/index.global.min.js",
    "@fullcalendar/core/locales/zh-cn.global.min.js",
})

# static_url_path is relative to url_prefix: "/static" serves our files at /calendar/static/….
bp = Blueprint(
    "calendar", __name__, root_path=str(CALENDAR_ROOT), template_folder="templates",
    static_folder="static", static_url_path="/static", url_prefix="/calendar",
)


@bp.get("")
@login_required
def index():
    columns = [{"id": c.id, "name": c.name, "color": color(c.color)}
               for c in db.session.execute(select(Column.id, Column.name, Column.color).order_by(Column.name))]
    channels = db.session.execute(select(Channel.id, Channel.name).order_by(Channel.name)).all()
    # FullCalendar's English is built in; Chinese comes from its zh-cn locale file.
    # (Babel reads "zh_CN" as zh_Hans_CN, so compare the language.)
    fc_locale = "zh-cn" if get_locale().language == "zh" else "en"
    return render_template(
        "calendar/index.html", fc_locale=fc_locale, columns=columns, channels=channels, no_column=NO_COLUMN,
        no_column_color=NO_COLUMN_COLOR, statuses=ITEM_STATUS_LABELS, origins=ORIGIN_LABELS, gaps=_gaps(),
        can_write=current_user.can(Role.EDITOR),
    )


def _gaps() -> list[dict]:
    """Columns whose next slots are not all filled: name, link, and the open slots."""
    # The column pages belong to another blueprint; without it the banner names the column only.
    has_pages = "columns" in current_app.blueprints
    return [
        {"name": column.name, "color": color(column.color), "ahead": column.slots_ahead,
         "url": url_for("columns.show", slug=column.slug) if has_pages else None,
         "slots": open_slots}
        for column, open_slots in schedule.gaps()
    ]


@bp.get("/vendor/<path:name>")
def vendor(name: str):
    # Public like the app's other static files (it is published open-source code). The
    # allow-list is the whole guard: "../package.json" and every other path is a plain 404.
    if name not in VENDOR_FILES:
        abort(404)
    return send_from_directory(NODE_MODULES, name)
