"""Branded columns: the list with their next slots, the create/edit form with its cadence builder,
one column's page with its next slots to fill, and a new calendar link.

The checks of a column's values live in `validate_column`, so the page and the JSON API
(api_columns.py) refuse bad input with the same words.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)

from .. import schedule
from ..extensions import db
from ..items import Invalid, fill_slot
from ..models import Channel, Column, Item, Media, MediaKind, Role, User
from ..schedule import WEEKDAYS, InvalidCadence, Slot
from ..security import role_required
from .settings import timezones

bp = Blueprint("columns", __name__, url_prefix="/columns")

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# "all" names the organisation-wide feed (/feeds/all.rss); "new" is this blueprint's form.
RESERVED_SLUGS = frozenset({"all", "new"})
PAGE_SLOTS = 10

DAY_NAMES = {"MO": _l("Monday"), "TU": _l("Tuesday"), "WE": _l("Wednesday"), "TH": _l("Thursday"),
             "FR": _l("Friday"), "SA": _l("Saturday"), "SU": _l("Sunday")}
NTH_NAMES = {1: _l("first"), 2: _l("second"), 3: _l("third"), 4: _l("fourth"), -1: _l("last")}
MODES = {"none": _l("No cadence"), "weekly": _l("Weekly"), "every_n_weeks": _l("Every N weeks"),
         "monthly": _l("Monthly, on the Nth weekday"), "raw": _l("Repeat rule (RRULE)")}


# --- the cadence builder -------------------------------------------------------------------------

def parse_rule(rule: str) -> dict[str, Any]:
    """The builder's fields for a stored rule; mode "raw" when it is not one of the builder's cases."""
    if not rule:
        return {"mode": "none"}
    parts: dict[str, str] = {}
    for part in rule.split(";"):
        key, _sep, value = part.partition("=")
        parts[key.upper()] = value.upper()
    raw = {"mode": "raw", "raw": rule}
    if not set(parts) <= {"FREQ", "INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"}:
        return raw
    if parts.get("BYSECOND", "0") != "0" or not parts.get("BYHOUR", "").isdigit() \
            or not parts.get("BYMINUTE", "").isdigit():
        return raw
    hour, minute = int(parts["BYHOUR"]), int(parts["BYMINUTE"])
    if hour > 23 or minute > 59:
        return raw
    at = f"{hour:02d}:{minute:02d}"
    interval = parts.get("INTERVAL", "1")
    days = parts.get("BYDAY", "").split(",")
    if parts["FREQ"] == "WEEKLY" and interval.isdigit() and int(interval) >= 1 and all(d in WEEKDAYS for d in days):
        if int(interval) == 1:
            return {"mode": "weekly", "days": days, "at": at}
        return {"mode": "every_n_weeks", "days": days, "at": at, "interval": int(interval)}
    match = re.fullmatch(r"(-1|[1-4])(MO|TU|WE|TH|FR|SA|SU)", parts.get("BYDAY", ""))
    if parts["FREQ"] == "MONTHLY" and interval == "1" and match:
        return {"mode": "monthly", "nth": int(match[1]), "day": match[2], "at": at}
    return raw


def _day_list(days: list[str]) -> str:
    names = [str(DAY_NAMES[d]) for d in days]
    return names[0] if len(names) == 1 else _("%(list)s and %(last)s", list=", ".join(names[:-1]), last=names[-1])


def describe_cadence(rule: str, zone: str) -> str:
    """The cadence in words, e.g. "Every Tuesday at 20:00 (Asia/Shanghai)"; the raw rule otherwise."""
    built = parse_rule(rule)
    mode = built["mode"]
    if mode == "none":
        return _("No cadence")
    if mode == "weekly":
        return _("Every %(days)s at %(time)s (%(zone)s)", days=_day_list(built["days"]), time=built["at"], zone=zone)
    if mode == "every_n_weeks":
        return _("Every %(n)d weeks on %(days)s at %(time)s (%(zone)s)", n=built["interval"],
                 days=_day_list(built["days"]), time=built["at"], zone=zone)
    if mode == "monthly":
        return _("On the %(nth)s %(day)s of every month at %(time)s (%(zone)s)", nth=NTH_NAMES[built["nth"]],
                 day=DAY_NAMES[built["day"]], time=built["at"], zone=zone)
    return _("Repeat rule %(rule)s (%(zone)s)", rule=rule, zone=zone)


# --- checking and saving a column's values -------------------------------------------------------

def _text(data: dict, name: str, errors: dict[str, str], limit: int | None = None, required: bool = False) -> None:
    value = data.get(name)
    if not isinstance(value, str):
        errors[name] = _("Must be a string.")
        return
    data[name] = value = value.strip()
    if required and not value:
        errors[name] = _("This field is required.")
    elif limit is not None and len(value) > limit:
        errors[name] = _("At most %(max)d characters.", max=limit)


def _int(data: dict, name: str, errors: dict[str, str], low: int, high: int) -> None:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        errors[name] = _("Must be a whole number from %(low)d to %(high)d.", low=low, high=high)


def _row_id(data: dict, name: str, errors: dict[str, str], exists) -> None:
    value = data.get(name)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not exists(value):
        errors[name] = _("Choose one from the list.")


def validate_column(data: dict[str, Any], column: Column | None) -> dict[str, Any]:
    """Check the given values (only the keys present); Invalid with every error at once.

    Keys: name, slug, color, description, intro, signoff, hashtags, cover_id, timezone, cadence,
    cadence_start (aware datetime), first_issue, themes, slots_ahead, owner_id, active, channel_ids.
    """
    data = dict(data)
    errors: dict[str, str] = {}
    if "name" in data:
        _text(data, "name", errors, 120, required=True)
    if "slug" in data:
        _text(data, "slug", errors, 80, required=True)
        slug = data["slug"] if "slug" not in errors else ""
        if slug and not SLUG.match(slug):
            errors["slug"] = _("Use lowercase letters, digits and hyphens only, e.g. tuesday-talk.")
        elif slug in RESERVED_SLUGS:
            errors["slug"] = _("“%(slug)s” is reserved by the site; choose another.", slug=slug)
        elif slug and db.session.scalar(select(Column.id).where(Column.slug == slug,
                                                                Column.id != (column.id if column else 0))):
            errors["slug"] = _("Another column already uses this slug.")
    if "color" in data:
        if not isinstance(data["color"], str) or not COLOR.match(data["color"].strip()):
            errors["color"] = _("Give the colour as #rrggbb, e.g. #3b82f6.")
        else:
            data["color"] = data["color"].strip().lower()
    for name, limit in (("description", None), ("intro", None), ("signoff", None), ("hashtags", 300),
                        ("themes", None)):
        if name in data:
            _text(data, name, errors, limit)
    if "timezone" in data and data["timezone"] not in set(timezones()):
        errors["timezone"] = _("Unknown timezone. Choose one from the list, e.g. Asia/Shanghai.")
    if "cadence" in data:
        try:
            data["cadence"] = schedule.validate_rule(data["cadence"] if isinstance(data["cadence"], str) else "")
        except InvalidCadence as exc:
            errors["cadence"] = str(exc)
    start = data.get("cadence_start")
    if start is not None and (not isinstance(start, datetime) or start.tzinfo is None):
        errors["cadence_start"] = _("The start needs a date and a timezone.")
    if "first_issue" in data:
        _int(data, "first_issue", errors, 0, 1_000_000)
    if "slots_ahead" in data:
        _int(data, "slots_ahead", errors, 1, 20)
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = _("Must be true or false.")
    _row_id(data, "owner_id", errors,
            lambda i: db.session.scalar(select(User.id).where(User.id == i, User.active.is_(True))))
    _row_id(data, "cover_id", errors,
            lambda i: db.session.scalar(select(Media.id).where(Media.id == i, Media.kind == MediaKind.IMAGE)))
    if "channel_ids" in data:
        ids = data["channel_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            errors["channel_ids"] = _("Must be a list of ids (integers).")
        else:
            found = db.session.scalars(select(Channel).where(Channel.id.in_(ids))).all()
            if len(found) != len(set(ids)):
                errors["channel_ids"] = _("No such channel: %(ids)s",
                                          ids=", ".join(map(str, sorted(set(ids) - {c.id for c in found}))))
            data["channels"] = found
    if errors:
        raise Invalid(errors)
    return data


def apply_column(column: Column, data: dict[str, Any]) -> None:
    """Write values checked by validate_column."""
    for name in ("name", "slug", "color", "description", "intro", "signoff", "hashtags", "cover_id", "timezone",
                 "cadence", "cadence_start", "first_issue", "themes", "slots_ahead", "owner_id", "active"):
        if name in data:
            setattr(column, name, data[name])
    if "channels" in data:
        column.default_channels = list(data["channels"])


def find_slot(column: Column, at: datetime) -> Slot | None:
    return next((s for s in schedule.slots(column, at, at + timedelta(seconds=1)) if s.at == at), None)


# --- the form ------------------------------------------------------------------------------------

class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ColumnForm(FlaskForm):
    name = StringField(_l("Name"))
    slug = StringField(_l("Slug (in addresses)"))
    color = StringField(_l("Colour"), default="#3b82f6")
    description = TextAreaField(_l("Description"))
    intro = TextAreaField(_l("Intro line"))
    signoff = TextAreaField(_l("Sign-off"))
    hashtags = StringField(_l("Hashtags (separated by spaces)"))
    cover_id = SelectField(_l("Cover image"), validate_choice=False)
    timezone = StringField(_l("Timezone"))
    mode = RadioField(_l("Cadence"), default="weekly", validate_choice=False,
                      choices=[SelectChoice(k, v) for k, v in MODES.items()])
    days = CheckboxesField(_l("Days"), validate_choice=False,
                           choices=[SelectChoice(d, DAY_NAMES[d]) for d in WEEKDAYS])
    interval = StringField(_l("Every how many weeks"), default="2")
    nth = SelectField(_l("Which"), validate_choice=False,
                      choices=[SelectChoice(str(n), label) for n, label in NTH_NAMES.items()])
    month_day = SelectField(_l("Weekday"), validate_choice=False,
                            choices=[SelectChoice(d, DAY_NAMES[d]) for d in WEEKDAYS])
    at = StringField(_l("Time (HH:MM)"), default="20:00")
    raw = StringField(_l("Repeat rule (RRULE)"))
    cadence_start = StringField(_l("Cadence starts on"))
    first_issue = StringField(_l("Number of the first issue"), default="1")
    themes = TextAreaField(_l("Themes (one per line, rotating per issue)"))
    slots_ahead = StringField(_l("Warn when any of the next N slots is open"), default="3")
    channel_ids = CheckboxesField(_l("Default channels"), coerce=int, validate_choice=False)
    owner_id = SelectField(_l("Owner"), validate_choice=False)
    active = BooleanField(_l("Active"), default=True)


def _offer_choices(form: ColumnForm, column: Column | None) -> bool:
    """Fill the selects; returns whether any image exists for the cover."""
    images = db.session.scalars(select(Media).where(Media.kind == MediaKind.IMAGE).order_by(Media.id.desc())).all()
    form.cover_id.choices = [SelectChoice("", _("No cover"))] + [
        SelectChoice(str(m.id), m.alt or m.original_name or f"#{m.id}") for m in images]
    channels = db.session.scalars(select(Channel).where(Channel.enabled.is_(True)).order_by(Channel.name)).all()
    if column is not None:  # a default channel switched off since stays visible, so it can be unticked
        channels += [c for c in column.default_channels if c not in channels]
    form.channel_ids.choices = [SelectChoice(c.id, c.name) for c in channels]
    owners = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name, User.email)).all()
    form.owner_id.choices = [SelectChoice("", _("Nobody"))] + [
        SelectChoice(str(u.id), f"{u.name} <{u.email}>") for u in owners]
    return bool(images)


def _fill_form(form: ColumnForm, column: Column) -> None:
    zone = ZoneInfo(column.timezone) if column.timezone in set(timezones()) else ZoneInfo("UTC")
    for name in ("name", "slug", "color", "description", "intro", "signoff", "hashtags", "timezone", "themes"):
        getattr(form, name).data = getattr(column, name)
    form.cover_id.data = str(column.cover_id or "")
    form.owner_id.data = str(column.owner_id or "")
    form.first_issue.data = str(column.first_issue)
    form.slots_ahead.data = str(column.slots_ahead)
    form.active.data = column.active
    form.channel_ids.data = [c.id for c in column.default_channels]
    if column.cadence_start:
        form.cadence_start.data = column.cadence_start.astimezone(zone).date().isoformat()
    built = parse_rule(column.cadence)
    form.mode.data = built["mode"]
    form.days.data = built.get("days", [])
    form.at.data = built.get("at", form.at.default)
    form.interval.data = str(built.get("interval", form.interval.default))
    form.nth.data = str(built.get("nth", 1))
    form.month_day.data = built.get("day", "MO")
    form.raw.data = built.get("raw", column.cadence)


def _built_rule(form: ColumnForm, errors: dict[str, str]) -> str:
    """The RRULE the builder describes; errors go next to the builder's fields."""
    mode = form.mode.data
    if mode == "none":
        return ""
    if mode == "raw":
        return form.raw.data or ""
    if mode not in MODES:
        errors["mode"] = _("Choose how the column repeats.")
        return ""
    match = HH_MM.match((form.at.data or "").strip())
    if not match:
        errors["at"] = _("Give the time as HH:MM, e.g. 20:00.")
        return ""
    hour, minute = int(match[1]), int(match[2])
    try:
        if mode == "monthly":
            nth = int(form.nth.data) if (form.nth.data or "").lstrip("-").isdigit() else 0
            return schedule.monthly_rule(nth, form.month_day.data or "", hour, minute)
        interval = 1
        if mode == "every_n_weeks":
            raw = (form.interval.data or "").strip()
            if not raw.isdigit() or not 2 <= int(raw) <= 52:
                errors["interval"] = _("Must be a whole number from %(low)d to %(high)d.", low=2, high=52)
                return ""
            interval = int(raw)
        return schedule.weekly_rule(form.days.data or [], hour, minute, interval)
    except InvalidCadence as exc:
        errors["nth" if mode == "monthly" else "days"] = str(exc)
        return ""


def _form_values(form: ColumnForm, errors: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(form, name).data or "" for name in
                              ("name", "slug", "color", "description", "intro", "signoff", "hashtags", "themes")}
    values["timezone"] = (form.timezone.data or "").strip()
    values["cadence"] = _built_rule(form, errors)
    for name in ("first_issue", "slots_ahead"):
        raw = (getattr(form, name).data or "").strip()
        values[name] = int(raw) if raw.isdigit() else -1
    for name in ("cover_id", "owner_id"):
        raw = getattr(form, name).data or ""
        values[name] = int(raw) if raw.isdigit() else (None if raw == "" else -1)
    values["channel_ids"] = form.channel_ids.data or []
    values["active"] = bool(form.active.data)
    raw_start = (form.cadence_start.data or "").strip()
    values["cadence_start"] = None
    if raw_start:
        try:
            start = date.fromisoformat(raw_start)
        except ValueError:
            errors["cadence_start"] = _("Give the date as YYYY-MM-DD.")
        else:
            zone = values["timezone"] if values["timezone"] in set(timezones()) else "UTC"
            values["cadence_start"] = datetime.combine(start, time(0, 0), ZoneInfo(zone))
    return values


FIELD_OF = {"cadence": "raw", "channel_ids": "channel_ids"}


def _save(form: ColumnForm, column: Column) -> dict[str, str]:
    """Validate the posted form into `column`; the errors by form field (nothing saved when any)."""
    errors: dict[str, str] = {name: messages[0] for name, messages in form.errors.items() if messages}
    values = _form_values(form, errors)
    try:
        clean = validate_column(values, column if column.id else None)
    except Invalid as exc:
        for key, message in exc.errors.items():
            field = FIELD_OF.get(key, key)
            if key == "cadence" and form.mode.data != "raw":
                field = "mode"
            errors.setdefault(field, message)
        clean = None
    if errors or clean is None:
        db.session.rollback()
        return errors
    apply_column(column, clean)
    if column.id is None:
        db.session.add(column)
    db.session.commit()
    return {}


def _render_form(form: ColumnForm, column: Column | None, errors: dict[str, str]):
    has_images = _offer_choices(form, column)
    preview = ""
    if not errors.get("mode") and not errors.get("raw"):
        preview = _built_rule(form, {})
    return render_template("web/columns/form.html", form=form, column=column, errors=errors, has_images=has_images,
                           timezones=timezones(), built_rule=preview,
                           described=describe_cadence(preview, form.timezone.data or "") if preview else ""), \
        400 if errors else 200


# --- pages ---------------------------------------------------------------------------------------

def _column(slug: str) -> Column:
    column = db.session.scalar(select(Column).where(Column.slug == slug))
    if column is None:
        abort(404)
    return column


def ics_urls(column: Column | None) -> str:
    from ..i18n import organisation

    base = current_app.config["BASE_URL"].rstrip("/")
    if column is None:
        return f"{base}/ics/{organisation().ics_token}.ics"
    return f"{base}/ics/columns/{column.slug}/{column.ics_token}.ics"


@bp.get("")
@login_required
def index():
    columns = db.session.scalars(select(Column).order_by(Column.active.desc(), Column.name)).all()
    upcoming = {c.id: schedule.next_slots(c, c.slots_ahead) for c in columns}
    counts = dict(db.session.execute(select(Item.column_id, func.count()).group_by(Item.column_id)).all())
    return render_template("web/columns/index.html", columns=columns, upcoming=upcoming, counts=counts,
                           describe=describe_cadence, can_write=current_user.can(Role.EDITOR))


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def new():
    form = ColumnForm()
    errors: dict[str, str] = {}
    if request.method == "GET":
        from ..i18n import organisation

        form.timezone.data = organisation().timezone
        form.cadence_start.data = datetime.now(ZoneInfo(organisation().timezone)).date().isoformat()
        form.owner_id.data = str(current_user.id)
    else:
        column = Column(ics_token=secrets.token_urlsafe(24))
        form.validate()
        errors = _save(form, column)
        if not errors:
            flash(_("Column “%(name)s” created.", name=column.name), "success")
            return redirect(url_for("columns.show", slug=column.slug))
    return _render_form(form, None, errors)


@bp.route("/<slug>/edit", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def edit(slug: str):
    column = _column(slug)
    form = ColumnForm()
    errors: dict[str, str] = {}
    if request.method == "GET":
        _fill_form(form, column)
    else:
        form.validate()
        errors = _save(form, column)
        if not errors:
            flash(_("Column “%(name)s” saved.", name=column.name), "success")
            return redirect(url_for("columns.show", slug=column.slug))
        column = _column(slug)  # the rolled-back row, for the page's title and links
    return _render_form(form, column, errors)


@bp.get("/<slug>")
@login_required
def show(slug: str):
    column = _column(slug)
    upcoming = schedule.next_slots(column, PAGE_SLOTS)
    items = {i.id: i for i in db.session.scalars(
        select(Item).where(Item.id.in_([s.item_id for s in upcoming if s.item_id])))}
    gap = [s for s in upcoming[: column.slots_ahead] if s.open]
    return render_template("web/columns/show.html", column=column, upcoming=upcoming, items=items, gap=gap,
                           described=describe_cadence(column.cadence, column.timezone),
                           can_write=current_user.can(Role.EDITOR), ics_url=ics_urls(column))


@bp.post("/<slug>/fill")
@role_required(Role.EDITOR)
def fill(slug: str):
    """Fill an open slot with a numbered, themed draft and open it for writing."""
    column = _column(slug)
    back = request.form.get("next") == "dashboard"
    target = url_for("dashboard.index") if back else url_for("columns.show", slug=slug)
    try:
        at = datetime.fromisoformat(request.form.get("at", ""))
        if at.tzinfo is None:
            raise ValueError
    except ValueError:
        flash(_("This slot's time could not be read. Reload the page and try again."), "error")
        return redirect(target)
    slot = find_slot(column, at)
    try:
        item = fill_slot(column, at, current_user)
    except Invalid as exc:
        db.session.rollback()
        flash(exc.errors.get("at", _("This slot cannot be filled.")), "error")
        return redirect(target)
    db.session.commit()
    flash(_("Draft created for No. %(number)d. Write it, then plan it on channels.",
            number=slot.issue_number if slot else 0), "success")
    return redirect(url_for("items.edit", item_id=item.id))


@bp.post("/<slug>/new-link")
@role_required(Role.ADMIN)
def new_link(slug: str):
    """A new secret for the column's calendar address: the old address stops working at once."""
    column = _column(slug)
    column.ics_token = secrets.token_urlsafe(24)
    db.session.commit()
    flash(_("New calendar link made; the old one no longer works."), "success")
    return redirect(url_for("columns.show", slug=slug) + "#subscribe")
