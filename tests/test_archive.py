"""The public archive: only published items, newest first, by column, in the organisation's time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from publisher.extensions import db
from publisher.models import Column, Item, ItemStatus, Origin, User
from publisher.security import hash_password


def item(title: str, status: str = ItemStatus.PUBLISHED, published_at: datetime | None = None, **fields) -> Item:
    row = Item(title=title, body=fields.pop("body", "**Hello** community"), status=status,
               published_at=published_at or (datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
                                             if status == ItemStatus.PUBLISHED else None), **fields)
    db.session.add(row)
    db.session.commit()
    return row


@pytest.fixture
def client(client):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # the assertions read English labels
    return client


def titles(html: str) -> list[str]:
    return re.findall(r'<a class="title" href="/archive/\d+">([^<]*)</a>', html)


def test_an_unpublished_item_is_not_found(app, client):
    draft = item("Draft", ItemStatus.DRAFT)
    planned = item("Planned", ItemStatus.SCHEDULED)
    out = item("Out")
    assert client.get(f"/archive/{draft.id}").status_code == 404
    assert client.get(f"/archive/{planned.id}").status_code == 404
    assert client.get("/archive/999999").status_code == 404
    assert client.get(f"/archive/{out.id}").status_code == 200
    listing = client.get("/archive").get_data(as_text=True)
    assert titles(listing) == ["Out"]


def test_item_page(app, client):
    column = Column(name="会员故事", slug="member-stories", color="#059669")
    member = User(email="lin@example.com", name="林晓", password_hash=hash_password("not-used-1"), active=False)
    story = item("我的第一次 Meetup", origin=Origin.UGC, column=column, author=member,
                 body="**真实**的故事 <script>alert(1)</script>")
    editor = User(email="ed@example.com", name="Editor Zhou", password_hash=hash_password("not-used-1"))
    news = item("Release notes", origin=Origin.PGC, author=editor)

    resp = client.get(f"/archive/{story.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200  # no login needed
    assert "我的第一次 Meetup" in html and "<strong>真实</strong>" in html
    assert "<script>alert(1)" not in html
    assert "Contributed by 林晓" in html
    assert "会员故事" in html and 'href="/archive?column=member-stories"' in html
    assert "2026-03-02 00:30" in html  # 16:30 UTC is half past midnight in Shanghai
    assert 'type="application/rss+xml"' in html and 'href="/feeds/member-stories.atom"' in html

    other = client.get(f"/archive/{news.id}").get_data(as_text=True)
    assert "Contributed by" not in other and 'href="/feeds/all.rss"' in other


def test_listing_pages_newest_first(app, client):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(25):
        item(f"Item {n:02d}", published_at=start + timedelta(days=n))
    first = client.get("/archive").get_data(as_text=True)
    assert titles(first) == [f"Item {n:02d}" for n in range(24, 4, -1)]
    assert 'href="/archive?page=2"' in first and 'rel="prev"' not in first
    second = client.get("/archive?page=2").get_data(as_text=True)
    assert titles(second) == [f"Item {n:02d}" for n in range(4, -1, -1)]
    assert 'href="/archive?page=1"' in second and 'rel="next"' not in second
    assert client.get("/archive?page=3").status_code == 404


def test_listing_by_column(app, client):
    night = Column(name="周二产品夜话", slug="product-night", color="#7c3aed")
    picks = Column(name="每周精选", slug="weekly-picks", color="red;z:url(x)")
    item("Talk", column=night, format="event")
    item("Picks", column=picks)
    item("Loose")
    page = client.get("/archive?column=product-night").get_data(as_text=True)
    assert titles(page) == ["Talk"]
    assert "Event" in page and "2026-03-02 00:30" in page
    assert 'href="/feeds/product-night.rss"' in page
    assert "url(x)" not in client.get("/archive").get_data(as_text=True)  # a colour, or nothing
    assert client.get("/archive?column=nope").status_code == 404


def test_archive_is_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="2 per minute")
    client = app.test_client()
    assert [client.get("/archive").status_code for _ in range(3)] == [200, 200, 429]
