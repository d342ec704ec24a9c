"""The item pages: the list, writing and scheduling, the live deliveries table, actions, editing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Column, Delivery, DeliveryEvent, Item, utcnow
from publisher.web.items import explain
from tests.conftest import IsolatedClient, login
from tests.doubles import Answer
from tests.factories import make_channel, make_item, scheduled, set_organisation, webhook_channel


def english_client(app) -> FlaskClient:
    """A client whose requests run in contexts of their own (see conftest) and ask for English,
    the language these assertions read (the organisation's default is Chinese)."""
    c = IsolatedClient(app, app.response_class, use_cookies=True)
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return c


@pytest.fixture
def client(app):
    return english_client(app)


def logged_in(app, role: str) -> FlaskClient:
    c = english_client(app)
    assert login(c, f"{role}@example.com").status_code == 302
    return c


def fresh(model, id_):
    db.session.expire_all()
    return db.session.get(model, id_)


def counts() -> tuple[int, int]:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Item.id))), db.session.scalar(select(func.count(Delivery.id)))


def new_item(c, **data):
    form = {"title": "第12期：社群运营", "body": "**Hello**", "origin": "pgc", "format": "article", "when": "now"}
    form.update(data)
    return c.post("/items/new", data=form)


def local_input(dt: datetime, zone: str) -> str:
    return dt.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


def settle(drain, delivery_id: int, timeout: float = 15.0) -> Delivery:
    from tests.conftest import wait_for

    def done():
        dispatch.tick()
        drain()
        d = fresh(Delivery, delivery_id)
        return d if d.status not in ("scheduled", "queued", "sending") else None

    return wait_for(done, timeout)


# --- permissions --------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/"), ("GET", "/items/new"), ("POST", "/items/new"), ("GET", "/items/{item}"),
    ("GET", "/items/{item}/deliveries"), ("POST", "/items/{item}/schedule"), ("GET", "/items/{item}/edit"),
    ("POST", "/items/{item}/edit"), ("POST", "/items/{item}/deliveries/{delivery}/cancel"),
    ("POST", "/items/{item}/deliveries/{delivery}/retry"), ("POST", "/items/{item}/deliveries/{delivery}/mark-sent"),
]
READS = {"/", "/items/{item}", "/items/{item}/deliveries"}


@pytest.fixture
def planned(app, users):
    (d,) = scheduled([make_channel("feed", name="Feed")], utcnow() + timedelta(hours=1))
    return d


def _url(path: str, d: Delivery) -> str:
    return path.format(item=d.item_id, delivery=d.id)


def test_anonymous_is_sent_to_login(client, planned):
    for method, path in ROUTES:
        resp = client.open(_url(path, planned), method=method, data={"title": "x"})
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], (method, path)


def test_reviewer_reads_but_cannot_write(app, planned):
    reviewer = logged_in(app, "reviewer")
    for method, path in ROUTES:
        resp = reviewer.open(_url(path, planned), method=method, data={"title": "changed", "when": "now"})
        assert resp.status_code == (200 if path in READS and method == "GET" else 403), (method, path)
    page = reviewer.get(_url("/items/{item}", planned)).text
    assert "Retry now" not in page and "/cancel" not in page and "Schedule on more channels" not in page
    assert fresh(Delivery, planned.id).status == "scheduled" and fresh(Item, planned.item_id).title != "changed"


def test_editor_and_admin_see_every_page(app, planned):
    for role in ("editor", "admin"):
        c = logged_in(app, role)
        for method, path in ROUTES:
            if method == "GET":
                assert c.get(_url(path, planned)).status_code == 200, (role, path)


# --- creating ------------------------------------------------------------------------------------

def test_publish_now_schedules_one_delivery_per_channel(app, client, users):
    feed, other = make_channel("feed", name="Feed"), make_channel("feed", name="Second feed")
    login(client, "editor@example.com")
    before = utcnow()
    resp = new_item(client, channel_ids=[str(feed.id), str(other.id)])
    assert resp.status_code == 302
    item = db.session.scalar(select(Item))
    assert resp.headers["Location"].endswith(f"/items/{item.id}")
    assert item.status == "scheduled" and item.author.email == "editor@example.com"
    assert sorted(d.channel.name for d in item.deliveries) == ["Feed", "Second feed"]
    assert all(before - timedelta(seconds=1) <= d.due_at <= utcnow() for d in item.deliveries)
    page = client.get(resp.headers["Location"]).text
    assert "Saved and scheduled on 2 channel(s)." in page and "<strong>Hello</strong>" in page


def test_without_channels_the_item_stays_a_draft(app, client, users):
    make_channel("feed")
    login(client, "editor@example.com")
    resp = new_item(client, when="at", due_at="2030-01-01T20:00")
    assert resp.status_code == 302
    item = db.session.scalar(select(Item))
    assert item.status == "draft" and item.deliveries == []
    assert "Saved as a draft" in client.get(resp.headers["Location"]).text


def _disabled_channel() -> str:
    ch = make_channel("feed", name="Old feed")
    ch.enabled = False
    db.session.commit()
    return str(ch.id)


INVALID = [
    ({"title": "  "}, "A title is required."),
    ({"column_id": "999"}, "No such column."),
    ({"column_id": "abc"}, "No such column."),
    ({"format": "poem"}, "Unknown format."),
    ({"origin": "bot"}, "Unknown origin."),
    ({"when": "at", "due_at": ""}, "Choose a date and time, or publish now."),
    ({"when": "at", "due_at": "next tuesday"}, "Enter a date and time"),
    ({"channel_ids": "disabled"}, "These channels are switched off: Old feed"),
    ({"channel_ids": "12345"}, "No such channel: 12345"),
]


def test_invalid_input_changes_nothing(app, client, users):
    feed = make_channel("feed")
    disabled = _disabled_channel()
    login(client, "editor@example.com")
    for case, message in INVALID:
        data = {"channel_ids": str(feed.id), "body": "my careful text", **case}
        if data["channel_ids"] == "disabled":
            data["channel_ids"] = disabled
        resp = new_item(client, **data)
        assert resp.status_code == 400, case
        assert message in resp.text, case
        assert "my careful text" in resp.text  # the editor's text is kept
        assert counts() == (0, 0)


def test_a_time_in_the_past_is_refused(app, client, users):
    feed = make_channel("feed")
    login(client, "editor@example.com")
    resp = new_item(client, channel_ids=str(feed.id), when="at",
                    due_at=local_input(utcnow() - timedelta(hours=1), "Asia/Shanghai"))
    assert resp.status_code == 400 and "This time is in the past" in resp.text
    assert counts() == (0, 0)


@pytest.mark.parametrize(("zone", "entered", "utc"), [
    ("Asia/Shanghai", "2030-01-01T20:00", datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
    ("Europe/Berlin", "2030-07-01T20:00:30", datetime(2030, 7, 1, 18, 0, 30, tzinfo=UTC)),  # summer time, UTC+2
    ("Europe/Berlin", "2030-01-01T20:00", datetime(2030, 1, 1, 19, 0, tzinfo=UTC)),  # winter, UTC+1
    ("Europe/Berlin", "2030-10-27T02:30", datetime(2030, 10, 27, 0, 30, tzinfo=UTC)),  # twice that night: the first
])
def test_the_entered_time_is_in_the_organisations_timezone(app, client, users, zone, entered, utc):
    set_organisation(timezone=zone)
    feed = make_channel("feed")
    login(client, "editor@example.com")
    assert f"time in {zone}" in client.get("/items/new").text
    resp = new_item(client, channel_ids=str(feed.id), when="at", due_at=entered)
    assert resp.status_code == 302
    (d,) = db.session.scalars(select(Delivery)).all()
    assert d.due_at == utc
    shown = datetime.fromisoformat(entered).strftime("%Y-%m-%d %H:%M:%S")
    assert shown in client.get(resp.headers["Location"]).text  # and shown back the way it was entered


def test_a_time_the_clocks_skip_is_refused(app, client, users):
    set_organisation(timezone="Europe/Berlin")
    feed = make_channel("feed")
    login(client, "editor@example.com")
    resp = new_item(client, channel_ids=str(feed.id), when="at", due_at="2030-03-31T02:30")
    assert resp.status_code == 400 and "does not exist in Europe/Berlin" in resp.text
    assert counts() == (0, 0)


def test_the_item_page_sanitises_the_body(app, client, users):
    item = make_item(body="**bold** <script>alert(1)</script>", column=Column(name="周报", slug="weekly"))
    login(client, "reviewer@example.com")
    page = client.get(f"/items/{item.id}").text
    assert "<strong>bold</strong>" in page and "<script>alert(1)" not in page and "周报" in page


# --- the list ------------------------------------------------------------------------------------

def test_the_list_shows_newest_first_with_each_channels_status(app, client, users):
    set_organisation(timezone="Asia/Shanghai")
    old = make_item(title="Older", created_at=utcnow() - timedelta(days=1))
    feed = make_channel("feed", name="Feed")
    (d,) = scheduled([feed], datetime(2030, 1, 1, 12, 0, tzinfo=UTC), title="Newer")
    login(client, "reviewer@example.com")
    page = client.get("/").text
    assert page.index("Newer") < page.index("Older")
    row = page[page.index("Newer"):page.index("Older")]
    assert "2030-01-01 20:00" in row and "Feed" in row and 'data-status="scheduled"' in row
    assert old.status == "draft" and 'data-status="draft"' in page[page.index("Older"):]


def test_the_list_does_not_query_per_item(app, client, users):
    login(client, "editor@example.com")
    feeds = [make_channel("feed", name=f"Feed {i}") for i in range(2)]

    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    scheduled(feeds, utcnow() + timedelta(hours=1))
    few = statements()
    for _ in range(10):
        scheduled(feeds, utcnow() + timedelta(hours=1))
    assert statements() == few


# --- the deliveries table ------------------------------------------------------------------------

def test_the_deliveries_fragment(app, client, users, planned):
    login(client, "reviewer@example.com")
    resp = client.get(f"/items/{planned.item_id}/deliveries")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "<html" not in resp.text and 'data-final="false"' in resp.text
    assert "Feed" in resp.text and "Planned; it goes out at" in resp.text
    assert dispatch.cancel(planned)
    db.session.commit()
    resp = client.get(f"/items/{planned.item_id}/deliveries")
    assert 'data-final="true"' in resp.text and "Cancelled by an editor." in resp.text
    page = client.get(f"/items/{planned.item_id}").text
    assert 'id="deliveries"' in page and f'data-url="/items/{planned.item_id}/deliveries"' in page
    assert "deliveries.js" in page


# Each reason with the states a delivery can be in after it (see dispatch.py).
REASON_STATES = [
    ("scheduled", "scheduled"), ("claimed", "queued"), ("sending", "sending"), ("sent", "sent"),
    ("rate_limited", "scheduled"), ("retryable", "scheduled"), ("gave_up", "failed"), ("permanent", "failed"),
    ("unknown", "scheduled"), ("unknown", "unconfirmed"), ("render_error", "failed"), ("queue_lost", "scheduled"),
    ("worker_lost", "scheduled"), ("worker_lost", "unconfirmed"), ("cancelled", "cancelled"),
    ("manual", "scheduled"), ("manual", "sent"), ("held", "scheduled"), ("released", "scheduled"),
]


def test_every_reason_is_explained_in_plain_words(app):
    assert {reason for reason, _status in REASON_STATES} == set(dispatch.REASONS)
    set_organisation(timezone="Asia/Shanghai")
    at = datetime(2030, 1, 1, 6, 5, 3, tzinfo=UTC)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        sentences = {
            (reason, status): explain(Delivery(status=status, due_at=at, next_attempt_at=at, failures=3,
                                               events=[DeliveryEvent(reason=reason, status=status)]))
            for reason, status in REASON_STATES
        }
    assert len(set(sentences.values())) == len(REASON_STATES)  # every case has words of its own
    assert sentences[("rate_limited", "scheduled")].startswith("The channel's rate limit is reached")
    assert "goes out at 14:05:03" in sentences[("rate_limited", "scheduled")]
    assert "3 tries" in sentences[("gave_up", "failed")]
    assert "2030-01-01 14:05:03" in sentences[("scheduled", "scheduled")]


# --- actions -------------------------------------------------------------------------------------

def test_a_refusal_shows_the_services_words_and_retry_sends_it(app, client, users, drain, webhook_double):
    webhook_double.answer(Answer(400, "title must not be empty"))
    (d,) = scheduled([webhook_channel(webhook_double)])
    assert settle(drain, d.id).status == "failed"
    login(client, "editor@example.com")
    page = client.get(f"/items/{d.item_id}").text
    assert "The channel refused it." in page and "<code>400</code>" in page and "title must not be empty" in page
    assert "Retry now" in page and "Mark as sent" in page and "data-confirm=" in page
    resp = client.post(f"/items/{d.item_id}/deliveries/{d.id}/retry")
    assert resp.status_code == 302
    assert fresh(Delivery, d.id).status == "scheduled"
    assert "will be tried again now" in client.get(resp.headers["Location"]).text
    assert settle(drain, d.id).status == "sent"
    assert len(webhook_double.posts) == 1 and len(webhook_double.requests) == 2


def test_mark_a_failed_delivery_as_sent(app, client, users, drain, webhook_double):
    webhook_double.answer(Answer(400, "duplicate"))
    (d,) = scheduled([webhook_channel(webhook_double)])
    settle(drain, d.id)
    login(client, "editor@example.com")
    assert client.post(f"/items/{d.item_id}/deliveries/{d.id}/mark-sent").status_code == 302
    d = fresh(Delivery, d.id)
    assert d.status == "sent" and d.item.status == "published"
    assert "An editor marked it as sent." in client.get(f"/items/{d.item_id}/deliveries").text


def test_an_unconfirmed_delivery_offers_every_choice(app, client, users):
    (d,) = scheduled([make_channel("feed", name="Feed")])
    db.session.execute(update(Delivery).where(Delivery.id == d.id).values(status="unconfirmed", attempt=1,
                                                                          last_reason="unknown"))
    db.session.add(DeliveryEvent(delivery_id=d.id, attempt=1, status="unconfirmed", reason="unknown",
                                 code="timeout", message="no answer within 10 s"))
    db.session.commit()
    login(client, "editor@example.com")
    table = client.get(f"/items/{d.item_id}/deliveries").text
    assert "cannot tell whether it arrived" in table and 'data-final="true"' in table
    assert all(f"/deliveries/{d.id}/{a}" in table for a in ("cancel", "retry", "mark-sent"))
    assert client.post(f"/items/{d.item_id}/deliveries/{d.id}/cancel").status_code == 302
    assert fresh(Delivery, d.id).status == "cancelled"


def test_cancel_a_planned_delivery(app, client, users, planned):
    login(client, "editor@example.com")
    resp = client.post(f"/items/{planned.item_id}/deliveries/{planned.id}/cancel", follow_redirects=True)
    assert "The delivery to Feed is cancelled." in resp.text
    assert fresh(Delivery, planned.id).status == "cancelled"
    assert db.session.scalars(select(DeliveryEvent.reason).where(DeliveryEvent.delivery_id == planned.id)).all() \
        == ["scheduled", "cancelled"]


def test_an_action_that_no_longer_applies_changes_nothing(app, client, users, planned):
    assert dispatch.cancel(planned)
    db.session.commit()
    login(client, "editor@example.com")
    resp = client.post(f"/items/{planned.item_id}/deliveries/{planned.id}/retry", follow_redirects=True)
    assert "is cancelled by now, so nothing was changed" in resp.text
    assert fresh(Delivery, planned.id).status == "cancelled"
    other = make_item(title="Another")
    assert client.post(f"/items/{other.id}/deliveries/{planned.id}/cancel").status_code == 404
    assert client.post(f"/items/{planned.item_id}/deliveries/{planned.id}/delete").status_code == 404


def test_schedule_on_more_channels(app, client, users, planned):
    more = make_channel("feed", name="More")
    login(client, "editor@example.com")
    url = f"/items/{planned.item_id}/schedule"
    resp = client.post(url, data={"when": "now"})
    assert resp.status_code == 400 and "Choose at least one channel." in resp.text
    resp = client.post(url, data={"channel_ids": str(more.id), "when": "at", "due_at": "2030-01-01T20:00"})
    assert resp.status_code == 302
    item = fresh(Item, planned.item_id)
    assert [(d.channel.name, d.due_at) for d in item.deliveries] == [
        ("Feed", planned.due_at), ("More", datetime(2030, 1, 1, 12, 0, tzinfo=UTC))]


# --- editing -------------------------------------------------------------------------------------

def _edit_form(item: Item, **data) -> dict:
    return {"title": item.title, "body": item.body, "origin": item.origin, "format": item.format,
            "column_id": "", "version": str(item.version), **data}


def test_edit_saves_and_refuses_a_stale_copy(app, client, users):
    item = make_item()
    login(client, "editor@example.com")
    page = client.get(f"/items/{item.id}/edit").text
    assert re.search(r'name="version" type="hidden" value="1"|type="hidden" name="version" value="1"|'
                     r'id="version" name="version" type="hidden" value="1"', page)
    stale = _edit_form(item)
    assert client.post(f"/items/{item.id}/edit", data=_edit_form(item, title="Theirs")).status_code == 302
    item = fresh(Item, item.id)
    assert item.title == "Theirs" and item.version == 2
    resp = client.post(f"/items/{item.id}/edit", data={**stale, "title": "Mine", "body": "my long text"})
    assert resp.status_code == 409
    assert "Someone else changed this item" in resp.text and "reload the page to see their version" in resp.text
    assert "Mine" in resp.text and "my long text" in resp.text  # nothing the editor typed is lost
    assert fresh(Item, item.id).title == "Theirs"


def test_edit_refuses_a_change_made_between_read_and_write(app, client, users, monkeypatch):
    from publisher.web import items as web_items

    item = make_item()
    real = web_items.validate_item

    def validate_while_someone_saves(data):
        with db.engine.begin() as conn:  # another editor commits while this request is half-way
            conn.execute(update(Item.__table__).where(Item.id == item.id).values(title="Theirs", version=2))
        return real(data)

    monkeypatch.setattr(web_items, "validate_item", validate_while_someone_saves)
    login(client, "editor@example.com")
    resp = client.post(f"/items/{item.id}/edit", data=_edit_form(item, title="Mine"))
    assert resp.status_code == 409 and "Someone else changed this item" in resp.text and "Mine" in resp.text
    assert fresh(Item, item.id).title == "Theirs"


def test_edit_validation_errors_change_nothing(app, client, users):
    item = make_item()
    login(client, "editor@example.com")
    resp = client.post(f"/items/{item.id}/edit", data=_edit_form(item, title="", body="kept"))
    assert resp.status_code == 400 and "A title is required." in resp.text and "kept" in resp.text
    item = fresh(Item, item.id)
    assert item.title == "第12期：社群运营" and item.version == 1


def test_editing_a_sent_item_never_sends_it_again(app, client, users, drain, webhook_double):
    (d,) = scheduled([webhook_channel(webhook_double, name="Hook")])
    assert settle(drain, d.id).status == "sent"
    login(client, "editor@example.com")
    item = fresh(Item, d.item_id)
    page = client.get(f"/items/{item.id}/edit").text
    assert "already sent to Hook" in page and "nothing is sent again" in page
    assert client.post(f"/items/{item.id}/edit", data=_edit_form(item, title="Corrected")).status_code == 302
    dispatch.tick()
    drain()
    assert fresh(Item, item.id).title == "Corrected"
    assert len(webhook_double.requests) == 1 and db.session.scalar(select(func.count(Delivery.id))) == 1


# --- CSRF ----------------------------------------------------------------------------------------

def test_csrf_is_enforced(make_app):
    from publisher.models import Role
    from publisher.security import create_user

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        (d,) = scheduled([make_channel("feed")], utcnow() + timedelta(hours=1))
        item_id, delivery_id = d.item_id, d.id
    c = english_client(app)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"email": "editor@example.com", "password": "password-123",
                                  "csrf_token": token}).status_code == 302
    data = {"title": "t", "when": "now"}
    assert c.post("/items/new", data=data).status_code == 400
    assert c.post(f"/items/{item_id}/edit", data=data).status_code == 400
    assert c.post(f"/items/{item_id}/deliveries/{delivery_id}/cancel").status_code == 400
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/items/new").text).group(1)
    assert c.post("/items/new", data={**data, "csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(Item.id))) == 2
        assert db.session.get(Delivery, delivery_id).status == "scheduled"
