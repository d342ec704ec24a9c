"""Cadences, slots, issue numbers, themes and gaps: the arithmetic of branded columns.

A column's cadence is an RFC 5545 RRULE expanded from its `cadence_start` in the column's own
timezone, so "every Tuesday 20:00" stays 20:00 local time across daylight-saving changes.
A slot is one occurrence from now on; it is filled when an item of the column is planned at
exactly that time. Issue numbers are final when an item is published (sending.publish_items);
before that, the calendar predicts them by counting forward in time order over the column's
planned items and open slots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr
from flask_babel import gettext as _
from sqlalchemy import func, select

from .extensions import db
from .models import Column, Item, ItemStatus, utcnow

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
UNPUBLISHED = tuple(s for s in ItemStatus if s != ItemStatus.PUBLISHED)  # an IN list can use an index; != cannot
MAX_OCCURRENCES = 2000  # per query: a daily cadence over five years; guards against FREQ=MINUTELY


class InvalidCadence(ValueError):
    """The rule cannot be used; the message says why, in the user's language."""


@dataclass
class Slot:
    column_id: int
    at: datetime  # UTC
    issue_number: int  # predicted
    theme: str
    item_id: int | None = None  # the item that fills it, if any

    @property
    def open(self) -> bool:
        return self.item_id is None


# --- rules ---------------------------------------------------------------------------------------

def weekly_rule(days: list[str], hour: int, minute: int, interval: int = 1) -> str:
    """Every `interval` weeks on `days` (MO…SU) at hour:minute."""
    days = [d for d in WEEKDAYS if d in {x.upper() for x in days}]
    if not days:
        raise InvalidCadence(_("Choose at least one day of the week."))
    rule = f"FREQ=WEEKLY;BYDAY={','.join(days)};BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"
    return rule if interval == 1 else f"FREQ=WEEKLY;INTERVAL={interval};" + rule.removeprefix("FREQ=WEEKLY;")


def monthly_rule(nth: int, day: str, hour: int, minute: int) -> str:
    """The nth (1–4, or -1 for the last) weekday of every month at hour:minute."""
    if day.upper() not in WEEKDAYS or nth not in (1, 2, 3, 4, -1):
        raise InvalidCadence(_("Choose which weekday of the month (first to fourth, or last)."))
    return f"FREQ=MONTHLY;BYDAY={nth}{day.upper()};BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"


def validate_rule(rule: str) -> str:
    """The rule, normalised; InvalidCadence if it cannot be used as a cadence."""
    rule = (rule or "").strip().removeprefix("RRULE:")
    if not rule:
        return ""
    if "DTSTART" in rule.upper():
        raise InvalidCadence(_("Leave DTSTART out: the start is a field of its own."))
    freq = next((p.split("=", 1)[1].upper() for p in rule.split(";") if p.upper().startswith("FREQ=")), "")
    if freq not in {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}:
        raise InvalidCadence(_("A cadence repeats daily, weekly, monthly or yearly (FREQ=…)."))
    try:
        rrulestr(rule, dtstart=datetime(2030, 1, 1, tzinfo=UTC))
    except (ValueError, TypeError) as exc:
        raise InvalidCadence(_("This is not a valid repeat rule: %(error)s", error=str(exc))) from None
    return rule


def column_zone(column: Column) -> ZoneInfo:
    try:
        return ZoneInfo(column.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@lru_cache(maxsize=256)
def _rule(cadence: str, origin: datetime):
    # cache=True: the rule keeps what it has expanded, so the calendar's many requests for nearby
    # months do not walk the cadence again from its start each time. Keyed by the rule and its
    # start, so an edited cadence is a new entry.
    return rrulestr(cadence, dtstart=origin, cache=True)


def occurrences(column: Column, start: datetime, end: datetime) -> list[datetime]:
    """The cadence's times in [start, end), in UTC."""
    if not column.cadence or not column.active:
        return []
    zone = column_zone(column)
    origin = (column.cadence_start or column.created_at or utcnow()).astimezone(zone).replace(microsecond=0)
    # dateutil expands wall-clock times with the zone attached, so 20:00 stays 20:00 local.
    rule = _rule(column.cadence, origin)
    found: list[datetime] = []
    for local in rule.xafter(max(start, origin).astimezone(zone) - timedelta(microseconds=1), inc=False):
        at = local.astimezone(UTC)
        if at >= end or len(found) >= MAX_OCCURRENCES:
            break
        if at >= start:
            found.append(at)
    return found


# --- slots and numbers -------------------------------------------------------------------------

def theme_for(column: Column, issue_number: int) -> str:
    themes = column.theme_list
    return themes[(issue_number - column.first_issue) % len(themes)] if themes else ""


class Numbering:
    """Predicted issue numbers of [start, end) for several columns at once, in a fixed number of queries.

    Per column, one timeline in time order: the planned, unpublished items (anywhere in time) and
    the open slots from `now` on, numbered after the last published issue. Items planned at the
    same second share a place (and a slot). Used by the calendar (many columns, one month), the
    column pages (`slots`) and an item's predicted number (`posts.issue_number`).
    """

    def __init__(self, columns: list[Column], start: datetime, end: datetime, now: datetime | None = None,
                 *, items_of: set[int] | None = None, slots_of: set[int] | None = None):
        """`items_of`: columns whose planned items need a number (default all);
        `slots_of`: columns whose slots in [start, end) to list (default all)."""
        now = now or utcnow()
        items_of = {c.id for c in columns} if items_of is None else items_of
        slots_of = {c.id for c in columns} if slots_of is None else slots_of
        self.by_time: dict[tuple[int, datetime], int] = {}  # (column, planned time) -> predicted number
        self.slots: list[tuple[Column, Slot]] = []  # slots in [start, end) of `slots_of`, open or filled
        # Slots count from now on: those between now and the range (a month ahead) come first.
        ahead = {c.id: occurrences(c, now, end) for c in columns if end > now and c.active and c.cadence}
        # These numbers hold until the first slot counted passes (or something is written).
        first_slot = min((times[0] for times in ahead.values() if times), default=None)
        self.fresh_for = (first_slot - now).total_seconds() if first_slot else float("inf")
        columns = [c for c in columns if c.id in items_of or ahead.get(c.id)]
        if not columns:
            return
        ids = [c.id for c in columns]
        unpublished = Item.status.in_(UNPUBLISHED) & Item.planned_at.is_not(None)
        last = dict(db.session.execute(
            select(Item.column_id, func.max(Item.issue_number)).where(Item.column_id.in_(ids)).group_by(Item.column_id)
        ).all())
        earlier = dict(db.session.execute(
            select(Item.column_id, func.count(func.distinct(Item.planned_at)))
            .where(Item.column_id.in_(ids), unpublished, Item.planned_at < start).group_by(Item.column_id)
        ).all())
        # Planned times in the range, and on the slot times between now and the range.
        before = sorted({at for times in ahead.values() for at in times if at < start})
        in_range = (Item.planned_at >= start) & (Item.planned_at < end)
        taken: dict[int, dict[datetime, int]] = defaultdict(dict)  # column -> planned time -> an item there
        for column_id, planned_at, item_id in db.session.execute(
            select(Item.column_id, Item.planned_at, Item.id)
            .where(Item.column_id.in_(ids), unpublished, in_range | Item.planned_at.in_(before) if before else in_range)
            .order_by(Item.id)
        ):
            taken[column_id].setdefault(planned_at.replace(microsecond=0), item_id)
        for column in columns:
            mine, times = taken[column.id], ahead.get(column.id, [])
            top = last.get(column.id)
            first = (column.first_issue - 1 if top is None else top) + 1 + earlier.get(column.id, 0) \
                + sum(1 for at in times if at < start and at not in mine)
            timeline = sorted({at for at in mine if at >= start} | {at for at in times if at >= start})
            for n, at in enumerate(timeline, start=first):
                self.by_time[(column.id, at)] = n
            if column.id in slots_of:
                for at in times:
                    if at >= start:
                        n = self.by_time[(column.id, at)]
                        self.slots.append((column, Slot(column.id, at, n, theme_for(column, n), mine.get(at))))

    def predicted(self, column_id: int | None, planned_at: datetime) -> int | None:
        if column_id is None:
            return None
        return self.by_time.get((column_id, planned_at.replace(microsecond=0)))


def last_issue(column: Column) -> int:
    last = db.session.scalar(select(func.max(Item.issue_number)).where(Item.column_id == column.id))
    return last if last is not None else column.first_issue - 1


def slots(column: Column, start: datetime, end: datetime, now: datetime | None = None) -> list[Slot]:
    """The column's slots in [start, end) from `now` on, each with its predicted number and theme."""
    return [slot for _column, slot in Numbering([column], start, end, now, items_of=set()).slots]


def next_slots(column: Column, count: int, now: datetime | None = None) -> list[Slot]:
    """The next `count` slots from now (looking at most two years ahead)."""
    now = now or utcnow()
    return slots(column, now, now + timedelta(days=731), now)[:count]


def gaps(now: datetime | None = None) -> list[tuple[Column, list[Slot]]]:
    """Columns whose next `slots_ahead` slots are not all filled, with those open slots."""
    found = []
    for column in db.session.scalars(select(Column).where(Column.active.is_(True)).order_by(Column.name)):
        upcoming = next_slots(column, column.slots_ahead, now)
        open_ = [s for s in upcoming if s.open]
        if open_:
            found.append((column, open_))
    return found
