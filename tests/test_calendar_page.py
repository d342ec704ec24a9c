"""The calendar page, the FullCalendar files it loads, and its API: events, moving items, filling slots."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select

from publisher import dispatch, schedule
from publisher.extensions import db
from publisher.i18n import organisation
from publisher.models import Column, Item, ItemEvent, Role, User, utcnow
from tests.factories import make_channel, make_item

EVENTS = "/api/calendar/events"
MARCH = {"start": "2030-03-01T00:00:00Z", "end": "2030-04-01T00:00:00Z"}  # as FullCalendar sends them


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def plan(title: str, due_at: datetime, channels, statuses=(), **fields) -> Item:
    """An item on `channels` at `due_at`; `statuses` sets the deliveries' statuses in order."""
    item = make_item(title=title, **fields)
    deliveries = dispatch.schedule(item, channels, due_at)
    for delivery, status in zip(deliveries, statuses, strict=False):
        delivery.status = status
    db.session.commit()
    return item


def events(client, **params):
    response = client.get(EVENTS, query_string={**MARCH, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def set_timezone(name: str) -> None:
    organisation().timezone = name
    db.session.commit()


def sign_in(client, user) -> None:
    # Straight into Flask-Login's session: these tests are about the calendar, not the login form.
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


class Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def assets(html: str) -> list[str]:
    parser = Assets()
    parser.feed(html)
    return parser.urls


@pytest.fixture
def editor(client):
    """A client logged in as an editor (no password hashing: nobody logs in with the form here)."""
    user = User(email="editor@example.com", password_hash="-", role=Role.EDITOR)
    db.session.add(user)
    db.session.commit()
    sign_in(client, user)
    return client


def test_page_and_events_need_login(client):
    response = client.get("/calendar")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.get(EVENTS, query_string=MARCH)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_every_role_sees_the_page(app, users):
    for user in users.values():
        client = app.test_client()
        sign_in(client, user)
        assert client.get("/calendar").status_code == 200, user.role
        assert client.get(EVENTS, query_string=MARCH).status_code == 200, user.role


def test_page_loads_only_local_assets(editor):
    db.session.add(Column(name="周末读书会", slug="books", color="#16a34a"))
    db.session.add(Column(name="Sneaky", slug="sneaky", color="url(//ev.il/x)"))
    make_channel(name="企业微信群")
    set_timezone("Europe/Berlin")
    html = editor.get("/calendar").get_data(as_text=True)
    urls = assets(html)
    assert "/calendar/vendor/fullcalendar/index.global.min.js" in urls
    assert "/calendar/static/calendar.js" in urls and "/calendar/static/calendar.css" in urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
    for url in (u for u in urls if u.startswith("/calendar/")):
        assert editor.get(url).status_code == 200, url
    assert "Europe/Berlin" in html  # the timezone the times are in
    assert "周末读书会" in html and "#16a34a" in html and "企业微信群" in html  # legend and filters
    assert "ev.il" not in html  # a colour is a colour, not a way to load something


@pytest.mark.parametrize(("language", "fc_locale"), [("zh_CN", "zh-cn"), ("en", "en")])
def test_fullcalendar_speaks_the_page_language(make_app, editor, language, fc_locale):
    client = make_app().test_client()  # an app context per request, so the language is not cached
    sign_in(client, db.session.scalar(select(User)))
    client.post(f"/language/{language}")
    html = client.get("/calendar").get_data(as_text=True)
    zh_file = "/calendar/vendor/@fullcalendar/core/locales/zh-cn.global.min.js"
    assert (zh_file in assets(html)) == (fc_locale == "zh-cn")
    assert f'"locale": "{fc_locale}"' in html


def test_vendor_serves_the_allow_list_only(client):
    response = client.get("/calendar/vendor/fullcalendar/index.global.min.js")
    assert response.status_code == 200
    assert response.mimetype in {"text/javascript", "application/javascript"}
    assert response.get_data(as_text=True).startswith("/*!\nFullCalendar Standard Bundle v6.1.20")
    locale = client.get("/calendar/vendor/@fullcalendar/core/locales/zh-cn.global.min.js")
    assert locale.status_code == 200 and b'code:"zh-cn"' in locale.data
    for name in ("../package.json", "%2e%2e/package.json", "fullcalendar/package.json",
                 "fullcalendar/index.global.js", "fullcalendar/../fullcalendar/index.global.min.js"):
        assert client.get(f"/calendar/vendor/{name}").status_code == 404, name


def test_one_event_per_item_with_or_without_deliveries(app, editor):
    wecom, feed, mail = make_channel(name="WeCom"), make_channel(name="Feed"), make_channel(name="Mail")
    books = Column(name="Books", slug="books", color="#16a34a")
    db.session.add(books)
    item = plan("Reading club", utc(2030, 3, 5, 2), [wecom, feed, mail], ["sent", "failed", "sent"], column=books,
                status="published", issue_number=7)
    bare = plan("No column", utc(2030, 3, 6, 2), [feed])
    draft = make_item(title="Still writing", column=books, planned_at=utc(2030, 3, 7, 2))
    make_item(title="Not planned")  # no place on the calendar

    got = {e["extendedProps"]["itemId"]: e for e in events(editor)}
    assert set(got) == {item.id, bare.id, draft.id}
    first = got[item.id]
    assert first["start"] == "2030-03-05T10:00:00"  # Asia/Shanghai wall-clock
    assert first["title"] == "No. 7 · Reading club · 2/3 sent, 1 failed"
    assert first["color"] == "#16a34a" and first["url"] == f"/items/{item.id}"
    assert "pub-problem" in first["classNames"] and first["editable"] is False  # it went out
    props = first["extendedProps"]
    assert props["kind"] == "item" and props["status"] == "published" and props["issueNumber"] == 7
    assert props["column"] == {"id": books.id, "name": "Books", "color": "#16a34a"}
    assert props["origin"] == "pgc" and props["format"] == "article" and props["version"] == item.version
    assert [(d["channel"], d["status"]) for d in props["deliveries"]] == [
        ("Feed", "failed"), ("Mail", "sent"), ("WeCom", "sent")]
    loose = got[bare.id]
    assert loose["title"] == "No column · 0/1 sent" and loose["editable"] is True
    assert loose["color"] == "#9ca3af" and loose["extendedProps"]["column"] is None
    # A draft has its place too, with the number it will get (after No. 7, the last published).
    planned = got[draft.id]
    assert planned["title"] == "No. 8 · Still writing · Draft" and planned["editable"] is True
    assert planned["extendedProps"]["deliveries"] == [] and planned["extendedProps"]["numberFinal"] is False

    reviewer = app.test_client()
    user = User(email="reviewer@example.com", password_hash="-", role=Role.REVIEWER)
    db.session.add(user)
    db.session.commit()
    sign_in(reviewer, user)
    assert not any(e["editable"] for e in events(reviewer))  # reviewers look, editors move


def test_range_is_org_local_and_end_exclusive(editor):
    ch = make_channel()
    # Asia/Shanghai (the default) is UTC+8: 1 March 00:00 there is 28 February 16:00 UTC.
    plan("first minute", utc(2030, 2, 28, 16, 0), [ch])
    plan("a minute before", utc(2030, 2, 28, 15, 59), [ch])
    plan("last minute", utc(2030, 3, 1, 15, 59), [ch])
    plan("next day", utc(2030, 3, 1, 16, 0), [ch])
    got = events(editor, start="2030-03-01T00:00:00Z", end="2030-03-02T00:00:00Z")
    assert sorted(e["extendedProps"]["itemTitle"] for e in got) == ["first minute", "last minute"]
    assert [e["start"] for e in events(editor, start="2030-03-01", end="2030-03-02", origin="pgc")
            if e["extendedProps"]["itemTitle"] == "first minute"] == ["2030-03-01T00:00:00"]


@pytest.mark.parametrize(("zone", "local"), [("Asia/Shanghai", "2030-03-01T20:00:00"),
                                             ("Europe/Berlin", "2030-03-01T13:00:00")])
def test_times_are_in_the_organisation_timezone(editor, zone, local):
    set_timezone(zone)
    plan("noon UTC", utc(2030, 3, 1, 12), [make_channel()])
    (got,) = events(editor)
    assert got["start"] == local


def test_daylight_saving_time_in_berlin(editor):
    set_timezone("Europe/Berlin")
    ch = make_channel()
    plan("before the change", utc(2030, 3, 31, 0, 30), [ch])  # 01:30 CET
    plan("after the change", utc(2030, 3, 31, 1, 30), [ch])  # clocks went 02:00 -> 03:00 at 01:00 UTC
    got = {e["extendedProps"]["itemTitle"]: e["start"] for e in events(editor)}
    assert got == {"before the change": "2030-03-31T01:30:00", "after the change": "2030-03-31T03:30:00"}


def test_filters(editor):
    wecom, feed = make_channel(name="WeCom"), make_channel(name="Feed")
    books, music = Column(name="Books", slug="books"), Column(name="Music", slug="music")
    db.session.add_all([books, music])
    plan("books", utc(2030, 3, 2), [wecom, feed], ["sent", "failed"], column=books, status="published")
    plan("music", utc(2030, 3, 3), [wecom], ["scheduled"], column=music, origin="ugc")
    plan("loose", utc(2030, 3, 4), [feed], ["sent"], status="published")
    make_item(title="draft", planned_at=utc(2030, 3, 5))

    def titles(**params):
        return sorted(e["extendedProps"]["itemTitle"] for e in events(editor, **params))

    assert titles() == ["books", "draft", "loose", "music"]
    assert titles(column=str(books.id)) == ["books"]
    assert titles(column=[str(books.id), "none"]) == ["books", "draft", "loose"]
    assert titles(column="none") == ["draft", "loose"]
    assert titles(channel=str(wecom.id)) == ["books", "music"]
    assert titles(status="published") == ["books", "loose"]
    assert titles(status=["draft", "scheduled"]) == ["draft", "music"]
    assert titles(origin="ugc") == ["music"]
    assert titles(origin="pgc", channel=str(feed.id), status="published") == ["books", "loose"]
    # A channel filter narrows the event to that channel's delivery.
    (only,) = events(editor, channel=str(feed.id), column=str(books.id))
    assert [d["channel"] for d in only["extendedProps"]["deliveries"]] == ["Feed"]
    assert only["title"] == "books · 0/1 sent, 1 failed"


BAD = [
    ({"start": None}, "start of the range is missing"),
    ({"end": ""}, "end of the range is missing"),
    ({"start": "yesterday"}, "yesterday is not a date"),
    ({"end": "2030-02-30"}, "2030-02-30 is not a date"),
    ({"start": "0001-01-01"}, "0001-01-01 is not a date"),  # before year 1 in UTC
    ({"start": "2030-04-01", "end": "2030-03-01"}, "must come after its start"),
    ({"start": "2030-01-01", "end": "2030-04-12"}, "at most 100 days"),
    ({"column": "books"}, "Unknown column: books"),
    ({"channel": "-1"}, "Unknown channel: -1"),
    ({"status": "lost"}, "Unknown status: lost"),
    ({"origin": "AI"}, "Unknown origin: AI"),
]


def test_bad_parameters_are_explained(editor):
    for params, message in BAD:
        query = {k: v for k, v in {**MARCH, **params}.items() if v is not None}
        response = editor.get(EVENTS, query_string=query)
        assert response.status_code == 400, params
        assert message in response.get_json()["error"]["message"], params
    assert events(editor, start="2030-01-01", end="2030-04-11") == []  # 100 days is fine




# --- open slots ------------------------------------------------------------------------------

SHANGHAI = "Asia/Shanghai"


def weekly_column(slug: str = "weekly", **fields) -> Column:
    """Every Tuesday 20:00 Shanghai time, from four weeks ago on."""
    values = {"name": slug.title(), "slug": slug, "color": "#7c3aed", "timezone": SHANGHAI,
              "cadence": schedule.weekly_rule(["TU"], 20, 0), "cadence_start": utcnow() - timedelta(weeks=4),
              **fields}
    column = Column(**values)
    db.session.add(column)
    db.session.commit()
    return column


def around_now(days_before: int = 14, days_after: int = 35) -> dict[str, str]:
    now = utcnow().astimezone(organisation_zone()).replace(tzinfo=None, microsecond=0)
    return {"start": (now - timedelta(days=days_before)).isoformat(),
            "end": (now + timedelta(days=days_after)).isoformat()}


def organisation_zone():
    from publisher.i18n import org_zone

    return org_zone()


def local(at: datetime) -> str:
    return at.astimezone(organisation_zone()).replace(tzinfo=None).isoformat(timespec="seconds")


def test_open_slots_are_placeholders_from_now_on_with_number_and_theme(editor):
    column = weekly_column(themes="Books\nFilms\nMusic", first_issue=10)
    db.session.add(Column(name="Asleep", slug="asleep", cadence=column.cadence, active=False))
    published = make_item(title="Last week", column=column, status="published", issue_number=11,
                          planned_at=utcnow() - timedelta(days=7))
    db.session.commit()
    expected = schedule.slots(column, utcnow(), utcnow() + timedelta(days=35))
    filled = expected[1]
    draft = make_item(title="Written ahead", column=column, planned_at=filled.at)

    got = events(editor, **around_now())
    slots = [e for e in got if e["extendedProps"]["kind"] == "slot"]
    now = local(utcnow())
    assert slots and all(e["start"] > now for e in slots)  # only the future
    assert {e["extendedProps"]["column"]["id"] for e in slots} == {column.id}  # inactive columns have none
    assert [e["start"] for e in slots] == [local(s.at) for s in expected if s.at != filled.at]
    assert [e["extendedProps"]["issueNumber"] for e in slots] == [
        s.issue_number for s in schedule.slots(column, utcnow(), utcnow() + timedelta(days=35)) if s.open]
    first = slots[0]
    assert first["extendedProps"]["issueNumber"] == 12 and first["extendedProps"]["theme"] == "Music"
    assert first["title"] == "Open slot · Weekly · No. 12 · Music" and first["editable"] is False
    assert "pub-slot" in first["classNames"] and first["borderColor"] == "#7c3aed"
    assert first["extendedProps"]["at"] == expected[0].at.isoformat()
    items = {e["extendedProps"]["itemId"]: e for e in got if e["extendedProps"]["kind"] == "item"}
    assert items[draft.id]["title"] == "No. 13 · Written ahead · Draft"  # the filled slot's number
    assert items[published.id]["title"].startswith("No. 11 · Last week")

    # The column filter keeps its slots; channel, status and origin filters hide them.
    assert any(e["extendedProps"]["kind"] == "slot" for e in events(editor, column=str(column.id), **around_now()))
    assert not any(e["extendedProps"]["kind"] == "slot" for e in events(editor, column="none", **around_now()))
    assert not any(e["extendedProps"]["kind"] == "slot" for e in events(editor, status="draft", **around_now()))
    # A range weeks ahead counts the open slots and planned items before it, as schedule.slots does.
    make_item(title="Off the cadence", column=column, planned_at=expected[2].at + timedelta(hours=5))
    ahead = {"start": around_now(-40, 0)["start"], "end": around_now(0, 80)["end"]}
    far = [e for e in events(editor, **ahead) if e["extendedProps"]["kind"] == "slot"]
    truth = [s for s in schedule.slots(column, utcnow(), utcnow() + timedelta(days=80))
             if s.open and local(s.at) >= ahead["start"]]
    assert far and [(e["start"], e["extendedProps"]["issueNumber"]) for e in far] == [
        (local(s.at), s.issue_number) for s in truth]
    past = {"start": around_now(70)["start"], "end": around_now(0, 0)["start"]}
    assert not any(e["extendedProps"]["kind"] == "slot" for e in events(editor, **past))


def test_the_page_warns_about_gaps(editor):
    column = weekly_column(slots_ahead=2)
    full = weekly_column("full", slots_ahead=1)
    make_item(title="Next", column=full, planned_at=schedule.next_slots(full, 1)[0].at)
    html = editor.get("/calendar").get_data(as_text=True)
    banner = html[html.index('id="calendar-gaps"'):html.index('id="calendar-filters"')]
    assert "Weekly" in banner and "2 of the next 2 slots are open" in banner
    assert "Full" not in banner
    assert "No. 1" in banner and schedule.next_slots(column, 1)[0].at.astimezone(organisation_zone()).strftime(
        "%Y-%m-%d %H:%M") in banner


# --- moving an item ----------------------------------------------------------------------------

def move(client, item: Item, at: datetime | str, version: int | None = None, **kwargs):
    planned = at if isinstance(at, str) else local(at)
    return client.post(f"/api/calendar/items/{item.id}/move",
                       json={"planned_at": planned, "version": item.version if version is None else version}, **kwargs)


def test_moving_an_item_moves_its_deliveries(editor):
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = plan("Movable", due, [make_channel(name="A"), make_channel(name="B")])
    version = item.version
    response = move(editor, item, due + timedelta(days=1))
    assert response.status_code == 200, response.get_json()
    moved = response.get_json()
    assert moved["start"] == local(due + timedelta(days=1)) and moved["extendedProps"]["version"] == version + 1
    db.session.expire_all()
    item = db.session.get(Item, item.id)
    assert item.planned_at == due + timedelta(days=1)
    assert {d.due_at for d in item.deliveries} == {due + timedelta(days=1)}
    assert {d.next_attempt_at for d in item.deliveries} == {due + timedelta(days=1)}
    assert [e.action for e in item.history] == ["edited"]  # the history says who moved it


def test_a_stale_move_is_refused_and_changes_nothing(editor):
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = plan("Contested", due, [make_channel()])
    item.title = "Someone else's edit"
    db.session.commit()
    response = move(editor, item, due + timedelta(days=3), version=item.version - 1)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "stale_version" and "Someone else changed this item" in error["message"]
    db.session.expire_all()
    item = db.session.get(Item, item.id)
    assert item.planned_at == due and item.deliveries[0].due_at == due and item.history == []


def test_moves_into_the_past_or_of_sent_items_are_refused(editor):
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = plan("Soon", due, [make_channel()])
    response = move(editor, item, utcnow() - timedelta(days=1))
    assert response.status_code == 400 and "in the past" in response.get_json()["error"]["message"]
    gone = plan("Gone", due, [make_channel()], ["sent"], status="published")
    response = move(editor, gone, due + timedelta(days=1))
    assert response.status_code == 400 and "already gone out" in response.get_json()["error"]["message"]
    response = move(editor, item, "next Tuesday")
    assert response.status_code == 400 and "planned_at" in response.get_json()["error"]["fields"]
    db.session.expire_all()
    assert db.session.get(Item, item.id).planned_at == due and db.session.get(Item, gone.id).planned_at == due


def test_reviewers_may_not_move(app, users):
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = plan("Not yours", due, [make_channel()])
    client = app.test_client()
    sign_in(client, users["reviewer"])
    assert move(client, item, due + timedelta(days=1)).status_code == 403
    assert db.session.get(Item, item.id).planned_at == due


def test_a_session_must_send_the_csrf_token(make_app, users):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    sign_in(client, users["editor"])
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = plan("Guarded", due, [make_channel()])
    response = move(client, item, due + timedelta(days=1))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf_failed"
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/calendar").get_data(as_text=True))[1]
    response = move(client, item, due + timedelta(days=1), headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.get_json()


# --- filling a slot ----------------------------------------------------------------------------

def test_filling_a_slot_makes_a_numbered_themed_draft(editor):
    column = weekly_column(themes="Books\nFilms")
    slot = schedule.next_slots(column, 1)[0]
    response = editor.post("/api/calendar/slots/fill", json={"column_id": column.id, "at": local(slot.at)})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    item = db.session.get(Item, body["item_id"])
    assert body["edit_url"] == f"/items/{item.id}/edit"
    assert item.status == "draft" and item.planned_at == slot.at and item.column_id == column.id
    assert item.theme == slot.theme and f"No. {slot.issue_number}" in item.title
    assert db.session.scalar(select(ItemEvent.action).where(ItemEvent.item_id == item.id)) == "created"
    assert schedule.next_slots(column, 1)[0].item_id == item.id

    again = editor.post("/api/calendar/slots/fill", json={"column_id": column.id, "at": slot.at.isoformat()})
    assert again.status_code == 400 and "already filled" in again.get_json()["error"]["message"]
    nowhere = editor.post("/api/calendar/slots/fill",
                          json={"column_id": column.id, "at": local(slot.at + timedelta(hours=1))})
    assert nowhere.status_code == 400 and "no slot" in nowhere.get_json()["error"]["message"]
    assert editor.post("/api/calendar/slots/fill", json={"column_id": 999, "at": local(slot.at)}).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Item)) == 1


# --- a few queries, whatever the size of the plan ----------------------------------------------

def count_statements(client, params) -> tuple[int, list]:
    db.session.expunge_all()  # nothing cached in the session: every row must come from a query
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        got = events(client, **params)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return len([s for s in statements if "items" in s or "columns" in s or "deliveries" in s]), got


def test_events_take_the_same_few_queries_however_many_items_and_columns(editor):
    channels = [make_channel(name=f"ch{i}") for i in range(3)]
    columns = [weekly_column("first")]
    base = utcnow().replace(microsecond=0) + timedelta(hours=1)
    for n in range(5):
        plan(f"item {n}", base + timedelta(days=n), channels, column=columns[0] if n % 2 else None)
    few, got = count_statements(editor, around_now())
    assert len([e for e in got if e["extendedProps"]["kind"] == "item"]) == 5

    columns += [weekly_column(f"more{i}") for i in range(5)]
    for n in range(5, 40):
        plan(f"item {n}", base + timedelta(days=n % 30, minutes=n), channels, column=columns[n % 6])
        make_item(title=f"draft {n}", column=columns[n % 6], planned_at=base + timedelta(days=n % 30, hours=2))
    many, got = count_statements(editor, around_now())
    assert len([e for e in got if e["extendedProps"]["kind"] == "item"]) == 75
    assert len({e["extendedProps"]["column"]["id"] for e in got if e["extendedProps"]["kind"] == "slot"}) == 6
    planned = [e for e in got if e["extendedProps"].get("itemTitle", "").startswith("item")]
    assert len(planned) == 40 and all(len(e["extendedProps"]["deliveries"]) == 3 for e in planned)
    assert many == few <= 5, many  # items, columns, channels; last issue and earlier count per column


def exercise_the_api(api, editor: dict, reviewer: dict, channel_id: int) -> None:
    """Every /api/calendar operation's success through tests/test_openapi.py's Recorder (schemas checked)."""
    column = weekly_column("openapi", themes="Books")
    api.call("get", "/api/calendar/events", 200, reviewer, query="?" + "&".join(f"{k}={v}" for k, v in
                                                                                 around_now().items()))
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    item = api.call("post", "/api/items", 201, editor,
                    json={"title": "Movable", "channel_ids": [channel_id], "due_at": due.isoformat()}).get_json()
    api.call("post", "/api/calendar/items/{item_id}/move", 200, editor, item_id=item["id"],
             json={"planned_at": local(due + timedelta(days=1)), "version": item["version"]})
    slot = schedule.next_slots(column, 1)[0]
    api.call("post", "/api/calendar/slots/fill", 201, editor, json={"column_id": column.id, "at": slot.at.isoformat()})
