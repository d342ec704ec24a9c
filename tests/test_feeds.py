"""The public RSS and Atom feeds: valid documents, stable ids, only what went out on a feed channel,
sanitised content, and conditional GET."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import feedparser
import pytest

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Column, Delivery, DeliveryStatus, Item, ItemStatus, utcnow
from tests.factories import make_channel, scheduled, set_organisation, webhook_channel

KINDS = {"rss": "application/rss+xml; charset=utf-8", "atom": "application/atom+xml; charset=utf-8"}


def published(channel, title: str = "第12期：社群运营", sent_at: datetime | None = None, column=None,
              **fields) -> Item:
    """An item whose delivery to `channel` was sent at `sent_at`, recorded as the worker records it."""
    sent_at = sent_at or utcnow() - timedelta(hours=1)
    item = Item(title=title, body=fields.pop("body", "**Hello** community"), column=column,
                status=ItemStatus.PUBLISHED, published_at=sent_at, created_at=sent_at, updated_at=sent_at,
                **fields)
    db.session.add(item)
    db.session.add(Delivery(item=item, channel=channel, status=DeliveryStatus.SENT, due_at=sent_at,
                            next_attempt_at=sent_at, sent_at=sent_at, attempt=1))
    db.session.commit()
    return item


def url(app, path: str) -> str:
    return f"{app.config['BASE_URL']}{path}"


def fetch(client, app, path: str, **headers):
    resp = client.get(url(app, path), headers=headers)
    return resp, (feedparser.parse(resp.data) if resp.status_code == 200 else None)


@pytest.fixture
def column(app) -> Column:
    col = Column(name="周二产品夜话", slug="product-night", description="Every Tuesday at 20:00")
    db.session.add(col)
    db.session.commit()
    return col


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_org_and_column_feeds_are_valid(app, client, column, kind):
    set_organisation(locale="zh_CN")  # the feed speaks the organisation's language
    feed = make_channel("feed")
    published(feed, "In the column", column=column, sent_at=utcnow() - timedelta(hours=2))
    published(feed, "Outside any column")

    for path, titles, title in [
        (f"/feeds/all.{kind}", ["Outside any column", "In the column"], "My community"),
        (f"/feeds/product-night.{kind}", ["In the column"], "周二产品夜话 · My community"),
    ]:
        resp, parsed = fetch(client, app, path)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == KINDS[kind]
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.version == ("rss20" if kind == "rss" else "atom10")
        assert parsed.feed.title == title
        assert [e.title for e in parsed.entries] == titles  # newest first
        self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
        assert self_links == [url(app, path)]
        assert parsed.feed.language == "zh-CN"
        assert parsed.feed.updated_parsed is not None
    if kind == "atom":
        assert parsed.feed.id == url(app, "/feeds/product-night.atom")
        assert parsed.feed.author == "My community"
        assert parsed.entries[0].content[0].type == "text/html"
        assert parsed.entries[0].tags[0].term == "product-night"
    else:
        assert parsed.entries[0].tags[0].term == "周二产品夜话"


def test_language_follows_the_organisation(app, client):
    set_organisation(name="Open Source Club", locale="en")
    published(make_channel("feed"))
    resp, parsed = fetch(client, app, "/feeds/all.rss")
    assert b"<language>en</language>" in resp.data and parsed.feed.title == "Open Source Club"


def test_ids_are_stable_across_an_edit(app, client):
    item = published(make_channel("feed"), "Before the edit")
    link = url(app, f"/archive/{item.id}")
    rss, parsed_rss = fetch(client, app, "/feeds/all.rss")
    atom, parsed_atom = fetch(client, app, "/feeds/all.atom")
    assert parsed_rss.entries[0].id == link and parsed_rss.entries[0].link == link
    assert b'<guid isPermaLink="true">' + link.encode() + b"</guid>" in rss.data
    assert parsed_atom.entries[0].id == link and parsed_atom.entries[0].link == link
    first_updated = parsed_atom.entries[0].updated_parsed

    item.title, item.body = "After the edit", "A **new** body"
    item.updated_at = utcnow() + timedelta(seconds=2)  # an edit that is visibly later than the first fetch
    db.session.commit()

    rss2, parsed_rss2 = fetch(client, app, "/feeds/all.rss")
    atom2, parsed_atom2 = fetch(client, app, "/feeds/all.atom")
    assert parsed_rss2.entries[0].title == "After the edit" and parsed_rss2.entries[0].id == link
    assert parsed_atom2.entries[0].id == link and "<strong>new</strong>" in parsed_atom2.entries[0].content[0].value
    assert parsed_atom2.entries[0].updated_parsed > first_updated
    assert parsed_atom2.entries[0].published_parsed == parsed_atom.entries[0].published_parsed
    assert rss2.headers["ETag"] != rss.headers["ETag"] and atom2.headers["ETag"] != atom.headers["ETag"]


def test_dates_are_utc(app, client):
    shanghai = datetime(2026, 3, 1, 12, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    published(make_channel("feed"), sent_at=shanghai)
    rss, parsed = fetch(client, app, "/feeds/all.rss")
    assert b"<pubDate>Sun, 01 Mar 2026 04:30:00 +0000</pubDate>" in rss.data
    assert tuple(parsed.entries[0].published_parsed)[:6] == (2026, 3, 1, 4, 30, 0)
    atom, parsed = fetch(client, app, "/feeds/all.atom")
    assert b"<published>2026-03-01T04:30:00+00:00</published>" in atom.data
    assert tuple(parsed.entries[0].published_parsed)[:6] == (2026, 3, 1, 4, 30, 0)


def test_only_items_sent_to_a_feed_channel_appear(app, client, drain, webhook_double):
    feed = make_channel("feed")
    (on_feed,) = scheduled([feed], title="Went out on the feed")
    scheduled([feed], utcnow() + timedelta(hours=1), title="Scheduled for later")
    (on_hook,) = scheduled([webhook_channel(webhook_double)], title="Webhook only")
    dispatch.tick()
    drain()
    db.session.expire_all()
    assert db.session.get(Delivery, on_feed.id).status == "sent"
    assert db.session.get(Delivery, on_hook.id).status == "sent"
    for kind in KINDS:
        _, parsed = fetch(client, app, f"/feeds/all.{kind}")
        assert [e.title for e in parsed.entries] == ["Went out on the feed"]


def test_body_is_sanitised(app, client):
    body = ("**bold** <script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
            '<a href="javascript:alert(3)">click</a> and ]]> end')
    published(make_channel("feed"), body=body)
    for kind in KINDS:
        resp = client.get(url(app, f"/feeds/all.{kind}"))
        raw = resp.data.decode()
        assert "&lt;strong&gt;bold&lt;/strong&gt;" in raw
        assert "&lt;script" not in raw and "alert(" not in raw and "onerror" not in raw and "javascript:" not in raw
        # feedparser would clean it itself; turn that off to see what we sent.
        parsed = feedparser.parse(resp.data, sanitize_html=False)
        assert parsed.bozo == 0
        html = parsed.entries[0].content[0].value if kind == "atom" else parsed.entries[0].description
        assert "<strong>bold</strong>" in html and "]]&gt; end" in html
        assert "<script" not in html and "onerror" not in html and "javascript:" not in html


def test_conditional_get(app, client):
    feed = make_channel("feed")
    published(feed, "First", sent_at=utcnow() - timedelta(minutes=10))
    first = client.get(url(app, "/feeds/all.atom"))
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.cache_control.public and first.cache_control.max_age == 300

    by_etag = client.get(url(app, "/feeds/all.atom"), headers={"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.data == b"" and by_etag.headers["ETag"] == etag
    by_date = client.get(url(app, "/feeds/all.atom"), headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304 and by_date.data == b""
    # The RSS of the same rows is another document with its own validator.
    assert client.get(url(app, "/feeds/all.rss"), headers={"If-None-Match": etag}).status_code == 200

    published(feed, "Second", sent_at=utcnow())
    again = client.get(url(app, "/feeds/all.atom"), headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert [e.title for e in feedparser.parse(again.data).entries] == ["Second", "First"]
    assert client.get(url(app, "/feeds/all.atom"), headers={"If-Modified-Since": modified}).status_code == 200


def test_empty_feed_is_valid(app, client):
    for kind in KINDS:
        resp, parsed = fetch(client, app, f"/feeds/all.{kind}")
        assert resp.status_code == 200 and parsed.bozo == 0 and parsed.entries == []


def test_unknown_column_or_kind_is_404(app, client, column):
    assert client.get("/feeds/no-such-column.rss").status_code == 404
    assert client.get("/feeds/no-such-column.atom").status_code == 404
    assert client.get("/feeds/all.json").status_code == 404
    assert client.get("/feeds/product-night.rss").status_code == 200


def test_at_most_fifty_entries(app, client):
    feed = make_channel("feed")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(55):
        published(feed, f"Item {n}", sent_at=start + timedelta(hours=n))
    _, parsed = fetch(client, app, "/feeds/all.atom")
    assert len(parsed.entries) == 50 and parsed.entries[0].title == "Item 54" and parsed.entries[-1].title == "Item 5"


def test_feeds_are_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="2 per minute")
    client = app.test_client()
    assert [client.get("/feeds/all.rss").status_code for _ in range(3)] == [200, 200, 429]


def test_entries_show_the_brand_kit_and_format_fields_and_a_brand_change_changes_the_feed(app, client):
    column = Column(name="Weekly", slug="weekly", intro="Hello readers", signoff="See you", hashtags="books")
    db.session.add(column)
    db.session.commit()
    published(make_channel("feed"), "Meetup", column=column, format="event",
              event_start=datetime(2030, 1, 1, 12, tzinfo=UTC), event_place="Hall 1")
    first = client.get(url(app, "/feeds/weekly.atom"))
    html = feedparser.parse(first.data).entries[0].content[0].value
    assert "Hello readers" in html and "See you" in html and "#books" in html
    assert "Hall 1" in html and "2030-01-01 20:00" in html  # Asia/Shanghai, the organisation's zone
    column.intro = "Welcome back"
    db.session.commit()
    again = client.get(url(app, "/feeds/weekly.atom"), headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and "Welcome back" in again.text
