"""Cadences, slots, predicted issue numbers, rotating themes and gaps."""

from datetime import UTC, datetime, timedelta

import pytest

from publisher import schedule
from publisher.extensions import db
from publisher.models import Column, Item, ItemStatus


def make_column(**fields) -> Column:
    fields.setdefault("name", "周二产品夜话")
    fields.setdefault("slug", "tuesday")
    col = Column(**fields)
    db.session.add(col)
    db.session.commit()
    return col


def test_weekly_rule_builder_and_validation():
    assert schedule.weekly_rule(["tu", "FR"], 20, 0) == "FREQ=WEEKLY;BYDAY=TU,FR;BYHOUR=20;BYMINUTE=0;BYSECOND=0"
    assert schedule.weekly_rule(["MO"], 9, 30, interval=2).startswith("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO")
    assert schedule.monthly_rule(-1, "th", 19, 0) == "FREQ=MONTHLY;BYDAY=-1TH;BYHOUR=19;BYMINUTE=0;BYSECOND=0"
    with pytest.raises(schedule.InvalidCadence):
        schedule.weekly_rule([], 20, 0)
    for bad in ("FREQ=MINUTELY", "FREQ=WEEKLY;BYDAY=XX", "DTSTART:20300101T000000Z\nFREQ=DAILY", "nonsense"):
        with pytest.raises(schedule.InvalidCadence):
            schedule.validate_rule(bad)
    assert schedule.validate_rule("RRULE:FREQ=DAILY;BYHOUR=8") == "FREQ=DAILY;BYHOUR=8"


def test_cadence_keeps_local_time_across_daylight_saving(app):
    col = make_column(timezone="Europe/Berlin", cadence=schedule.weekly_rule(["TU"], 20, 0),
                      cadence_start=datetime(2030, 3, 1, tzinfo=UTC))
    times = schedule.occurrences(col, datetime(2030, 3, 19, tzinfo=UTC), datetime(2030, 4, 3, tzinfo=UTC))
    # Clocks go forward on Sunday 31 March 2030: 20:00 CET is 19:00 UTC, 20:00 CEST is 18:00 UTC.
    assert times == [datetime(2030, 3, 19, 19, tzinfo=UTC), datetime(2030, 3, 26, 19, tzinfo=UTC),
                     datetime(2030, 4, 2, 18, tzinfo=UTC)]


def test_monthly_nth_weekday_in_shanghai(app):
    col = make_column(timezone="Asia/Shanghai", cadence=schedule.monthly_rule(1, "SA", 10, 0),
                      cadence_start=datetime(2030, 1, 1, tzinfo=UTC))
    times = schedule.occurrences(col, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 4, 1, tzinfo=UTC))
    assert times == [datetime(2030, 1, 5, 2, tzinfo=UTC), datetime(2030, 2, 2, 2, tzinfo=UTC),
                     datetime(2030, 3, 2, 2, tzinfo=UTC)]


def test_slots_numbers_themes_and_fill(app):
    now = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday
    col = make_column(timezone="UTC", cadence=schedule.weekly_rule(["TU"], 20, 0), cadence_start=now,
                      first_issue=10, themes="Growth\nProduct\n\nCommunity\n")
    # Issue 11 is already published; an unpublished item is planned for the second slot.
    db.session.add(Item(title="old", column=col, status=ItemStatus.PUBLISHED, issue_number=11))
    planned = Item(title="planned", column=col, planned_at=datetime(2030, 1, 8, 20, tzinfo=UTC))
    db.session.add(planned)
    db.session.commit()
    got = schedule.slots(col, now, now + timedelta(days=22), now)
    assert [(s.at.day, s.issue_number, s.theme, s.item_id) for s in got] == [
        (1, 12, "Community", None),  # (12 - 10) % 3 = 2
        (8, 13, "Growth", planned.id),
        (15, 14, "Product", None),
        (22, 15, "Community", None),
    ]
    assert [s.open for s in schedule.next_slots(col, 2, now)] == [True, False]


def test_gaps_name_the_columns_that_run_dry(app):
    now = datetime(2030, 1, 1, tzinfo=UTC)
    full = make_column(name="Full", slug="full", timezone="UTC", cadence=schedule.weekly_rule(["WE"], 12, 0),
                       cadence_start=now, slots_ahead=2)
    dry = make_column(name="Dry", slug="dry", timezone="UTC", cadence=schedule.weekly_rule(["WE"], 12, 0),
                      cadence_start=now, slots_ahead=2)
    for day in (2, 9):
        db.session.add(Item(title=f"w{day}", column=full, planned_at=datetime(2030, 1, day, 12, tzinfo=UTC)))
    db.session.add(Item(title="one", column=dry, planned_at=datetime(2030, 1, 2, 12, tzinfo=UTC)))
    db.session.commit()
    found = schedule.gaps(now)
    assert [(c.slug, [s.at.day for s in open_]) for c, open_ in found] == [("dry", [9])]


def test_no_cadence_no_slots(app):
    col = make_column()
    assert schedule.slots(col, datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)) == []


def test_fill_slot_and_move_item(app):
    from publisher import dispatch, items
    from publisher.models import utcnow
    from tests.factories import make_channel

    now = utcnow()
    col = make_column(timezone="UTC", cadence="FREQ=DAILY;BYHOUR=12;BYMINUTE=0;BYSECOND=0",
                      cadence_start=now - timedelta(days=1), themes="A\nB")
    first = schedule.next_slots(col, 1)[0]
    item = items.fill_slot(col, first.at, None)
    db.session.commit()
    assert item.planned_at == first.at and item.theme == first.theme and item.deliveries == []
    assert schedule.next_slots(col, 1)[0].item_id == item.id
    with pytest.raises(items.Invalid):
        items.fill_slot(col, first.at, None)  # already filled
    with pytest.raises(items.Invalid):
        items.fill_slot(col, first.at + timedelta(minutes=1), None)  # not a slot

    (delivery,) = dispatch.schedule(item, [make_channel("feed")], item.planned_at)
    db.session.commit()
    version = item.version
    later = first.at + timedelta(days=1, hours=3)
    items.move_item(item, later, version)
    db.session.commit()
    db.session.expire_all()
    assert item.planned_at == later and item.deliveries[0].due_at == later and item.version > version
    with pytest.raises(items.Conflict):
        items.move_item(item, later + timedelta(hours=1), version)  # based on the old version
    with pytest.raises(items.Invalid):
        items.move_item(item, now - timedelta(days=1), item.version)
