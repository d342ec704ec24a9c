"""Our own channels under the same contract: the webhook's plain-text rendering and the feed's
entry HTML come from templates/posts/<type>/ like every other adapter's."""

from __future__ import annotations

import pytest

from channels.base import Post
from channels.feed import Feed
from channels.webhook import Webhook

BRAND = {"intro": "Hello readers", "signoff": "See you", "hashtags": ["books", "reading"]}


def post(fmt: str, **fields) -> Post:
    values = {"title": "Spring meetup", "body": "Come **along** <script>x()</script>", "url": "https://pub.example/a/1",
              "format": fmt, "brand": dict(BRAND), "issue_number": 12, "theme": "People", "locale": "en",
              "timezone": "Asia/Shanghai"}
    return Post(**{**values, **fields})


EXTRA = {
    "article": {},
    "image": {},
    "video": {"link_url": "https://v.example/1", "duration_seconds": 125},
    "audio": {"file_url": "https://pub.example/media/a.mp3", "duration_seconds": 3725},
    "event": {"start": "2030-01-01T12:00:00+00:00", "end": "2030-01-01T14:00:00+00:00", "place": "Hall 1",
              "online_url": "https://meet.example/x"},
}
DETAILS = {
    "article": [],
    "image": ["Images: 2"],
    "video": ["▶ Watch: https://v.example/1 (2:05)"],
    "audio": ["🎧 Listen: https://pub.example/media/a.mp3 (1:02:05)"],
    "event": ["When: 2030-01-01 20:00 – 2030-01-01 22:00 (Asia/Shanghai)", "Where: Hall 1",
              "Online: https://meet.example/x"],
}


@pytest.mark.parametrize("fmt", list(EXTRA))
def test_webhook_text_for_every_format(fmt):
    images = ["https://pub.example/media/1.png", "https://pub.example/media/2.png"] if fmt == "image" else []
    message = Webhook({"url": "http://x", "secret": "s"}).render(post(fmt, extra=EXTRA[fmt], images=images))
    text = message.payload["text"]
    assert text.startswith("Hello readers\n\nNo. 12 · People\nSpring meetup")
    for line in DETAILS[fmt]:
        assert line in text.splitlines()
    assert "Come along <script>x()</script>" in text  # plain text: nothing is interpreted
    assert "Read more: https://pub.example/a/1" in text and text.endswith("#books #reading\n\nSee you")
    assert message.preview == text and message.payload["body"] == post(fmt).body  # the raw Markdown stays


def test_webhook_speaks_chinese_for_a_chinese_organisation():
    text = Webhook({"url": "http://x", "secret": "s"}).render(post("event", locale="zh_CN", extra=EXTRA["event"])
                                                              ).payload["text"]
    assert "第12期 · People" in text and "地点: Hall 1" in text and "阅读全文: https://pub.example/a/1" in text


@pytest.mark.parametrize("fmt", list(EXTRA))
def test_feed_entry_html_for_every_format(fmt):
    images = ["https://pub.example/media/1.png"] if fmt == "image" else []
    html = Feed({}).render(post(fmt, extra=EXTRA[fmt], images=images)).payload["html"]
    assert "<p><em>Hello readers</em></p>" in html and "<strong>No. 12 · People</strong>" in html
    assert "Come <strong>along</strong>" in html and "<script" not in html  # sanitised, not escaped twice
    assert "#books #reading" in html and "<em>See you</em>" in html
    if fmt == "image":
        assert '<img src="https://pub.example/media/1.png" alt="">' in html
    if fmt == "event":
        assert "When: 2030-01-01 20:00 – 2030-01-01 22:00 (Asia/Shanghai)" in html
    if fmt == "video":
        assert '<a href="https://v.example/1">Watch</a> (Duration 2:05)' in html


def test_feed_escapes_brand_text():
    html = Feed({}).render(post("article", brand={"intro": "<b>hi</b> & bye"})).payload["html"]
    assert "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in html
