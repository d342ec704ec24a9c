"""The calendar page, the FullCalendar files it loads and the JSON events behind it."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, select

from publisher import dispatch
from publisher.extensions import db
from publisher.i18n import organisation
from publisher.models import Column, Item, Role, User
from tests.factories import make_channel, make_item

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
    response = client.get("/calendar/events", query_string={**MARCH, **params})
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
    for url in ("/calendar", "/calendar/events?start=2030-03-01&end=2030-03-02"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_every_role_sees_the_page(app, users):
    for user in users.values():
        client = app.test_client()
        sign_in(client, user)
        assert client.get("/calendar").status_code == 200, user.role
        assert client.get("/calendar/events", query_string=MARCH).status_code == 200, user.role


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


def test_one_event_per_item_and_due_time(editor):
    wecom, feed, mail = make_channel(name="WeCom"), make_channel(name="Feed"), make_channel(name="Mail")
    books = Column(name="Books", slug="books", color="#16a34a")
    db.session.add(books)
    item = plan("Reading club", utc(2030, 3, 5, 2), [wecom, feed, mail], ["sent", "failed", "sent"], column=books)
    dispatch.schedule(item, [wecom], utc(2030, 3, 12, 2))  # the same item again a week later
    db.session.commit()
    bare = plan("No column", utc(2030, 3, 6, 2), [feed])

    got = {(e["extendedProps"]["itemId"], e["start"]): e for e in events(editor)}
    assert set(got) == {(item.id, "2030-03-05T10:00:00"), (item.id, "2030-03-12T10:00:00"),
                        (bare.id, "2030-03-06T10:00:00")}
    first = got[(item.id, "2030-03-05T10:00:00")]
    assert first["title"] == "Reading club · 2/3 sent, 1 failed"
    assert first["backgroundColor"] == "#16a34a" and first["url"] == f"/items/{item.id}"
    assert "pub-problem" in first["classNames"]
    props = first["extendedProps"]
    assert props["column"] == {"id": books.id, "name": "Books", "color": "#16a34a"}
    assert props["origin"] == "pgc" and props["format"] == "article"
    assert [(d["channel"], d["status"]) for d in props["deliveries"]] == [
        ("Feed", "failed"), ("Mail", "sent"), ("WeCom", "sent")]
    assert got[(item.id, "2030-03-12T10:00:00")]["title"] == "Reading club · 0/1 sent"
    later = got[(bare.id, "2030-03-06T10:00:00")]
    assert later["backgroundColor"] == "#9ca3af" and later["extendedProps"]["column"] is None


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
    plan("books", utc(2030, 3, 2), [wecom, feed], ["sent", "failed"], column=books)
    plan("music", utc(2030, 3, 3), [wecom], ["scheduled"], column=music, origin="ugc")
    plan("loose", utc(2030, 3, 4), [feed], ["sent"])

    def titles(**params):
        return sorted(e["extendedProps"]["itemTitle"] for e in events(editor, **params))

    assert titles() == ["books", "loose", "music"]
    assert titles(column=str(books.id)) == ["books"]
    assert titles(column=[str(books.id), "none"]) == ["books", "loose"]
    assert titles(column="none") == ["loose"]
    assert titles(channel=str(wecom.id)) == ["books", "music"]
    assert titles(status="sent") == ["books", "loose"]
    assert titles(status=["failed", "scheduled"]) == ["books", "music"]
    assert titles(origin="ugc") == ["music"]
    assert titles(origin="pgc", channel=str(feed.id), status="sent") == ["loose"]
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
    ({"status": "lost"}, "Unknown delivery status: lost"),
    ({"origin": "AI"}, "Unknown origin: AI"),
]


def test_bad_parameters_are_explained(editor):
    for params, message in BAD:
        query = {k: v for k, v in {**MARCH, **params}.items() if v is not None}
        response = editor.get("/calendar/events", query_string=query)
        assert response.status_code == 400, params
        assert message in response.get_json()["error"], params
    assert events(editor, start="2030-01-01", end="2030-04-11") == []  # 100 days is fine


def test_events_take_one_query_however_many_items(editor):
    channels = [make_channel(name=f"ch{i}") for i in range(3)]
    books = Column(name="Books", slug="books")
    db.session.add(books)
    for day in range(1, 21):
        plan(f"item {day}", utc(2030, 3, day, 4), channels, column=books if day % 2 else None)
    db.session.expunge_all()  # nothing cached in the session: every row must come from the query
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        got = events(editor)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(got) == 20 and all(len(e["extendedProps"]["deliveries"]) == 3 for e in got)
    touching = [s for s in statements if "deliveries" in s or "items" in s or "columns" in s or "channels" in s]
    assert len(touching) == 1, touching
