"""The Mastodon adapter against an instance double with Mastodon's tokens, idempotency and limits."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from channels import mastodon as mastodon_module
from channels import registry
from channels.base import Message, Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.mastodon import ADAPTER, Mastodon
from channels.text import count
from tests.adapters.mastodon_double import MastodonDouble
from tests.doubles import Answer

TOKEN = "mastodon-secret-access-token-0123456789"


@pytest.fixture(autouse=True)
def _fresh_instance_cache():
    mastodon_module._instances.clear()
    yield
    mastodon_module._instances.clear()


@pytest.fixture
def md():
    double = MastodonDouble(TOKEN)
    yield double
    double.close()


def adapter(double, **config) -> Mastodon:
    ch = Mastodon({"base_url": double.url, "access_token": TOKEN, "timeout": 2, **config})
    ch.media_poll_seconds = 0.01
    return ch


def post(**fields) -> Post:
    values = dict(title="第12期：社群运营", body="**Hello** community, see [docs](https://docs.example/a).",
                  url="https://pub.example/archive/7", issue_number=12, theme="增长",
                  brand={"intro": "每周一读", "signoff": "— 社群团队", "hashtags": ["社群", "ops-tips", "#weekly"]})
    values.update(fields)
    return Post(**values)


def png(path, colour="green"):
    Image.new("RGB", (8, 8), colour).save(path)
    return str(path)


def test_registry_and_declarations():
    registry.available.cache_clear()
    assert registry.get("mastodon") is ADAPTER
    assert ADAPTER.idempotent is True and ADAPTER.secret_fields() == {"access_token"}
    assert ADAPTER.limits.length_unit == "mastodon" and ADAPTER.limits.max_length == 500
    from limits import parse
    assert parse(ADAPTER.limits.rate_limit).amount == 300 and parse(ADAPTER.limits.rate_limit).get_expiry() == 300
    assert Mastodon.validate_config({"base_url": "https://m.example", "access_token": "t", "visibility": "x"}) \
        == {"visibility": "Choose one of: public, unlisted, private"}
    assert Mastodon.validate_config({"base_url": "https://m.example", "access_token": "t"}) == {}


def test_article_status_is_plain_text_with_brand_issue_link_and_tags(md):
    ch = adapter(md, visibility="unlisted", language="zh")
    msg = ch.render(post())
    receipt = ch.send(msg, idempotency_key="delivery-1")
    req = md.requests[-1]
    assert req.path == "/api/v1/statuses"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}" and req.headers["Idempotency-Key"] == "delivery-1"
    body = req.json()
    assert body == {"status": msg.preview, "visibility": "unlisted", "language": "zh"}
    status = body["status"]
    assert status.splitlines()[:4] == ["每周一读", "", "第12期 · 增长", "第12期：社群运营"]
    assert "Hello community, see docs (https://docs.example/a)." in status  # no Markdown left
    assert "**" not in status and "[docs]" not in status
    assert "🔗 阅读全文: https://pub.example/archive/7" in status and "— 社群团队" in status
    assert status.endswith("#社群 #ops_tips #weekly")
    assert msg.length == count(status, "mastodon") == md.length(status)
    assert receipt.remote_id == md.statuses[0]["id"] and receipt.url == md.statuses[0]["url"]
    assert TOKEN not in repr(receipt)


def test_urls_count_23_and_long_text_is_cut_with_the_link():
    ch = Mastodon({"base_url": "https://m.example", "access_token": TOKEN})
    long_url = "https://example.com/" + "x" * 200
    msg = ch.render(post(body=f"See {long_url}\n\n" + "社群运营的要点。" * 200))
    assert len(msg.preview) > 500 >= msg.length  # the long URL counts 23
    assert 480 <= msg.length <= 500 and "…" in msg.preview
    assert long_url in msg.preview and "https://pub.example/archive/7" in msg.preview
    assert msg.preview.endswith("#社群 #ops_tips #weekly")
    bigger = Mastodon({"base_url": "https://m.example", "access_token": TOKEN, "max_characters": 1000})
    assert 980 <= bigger.render(post(body="社群运营的要点。" * 200)).length <= 1000


def test_formats():
    ch = Mastodon({"base_url": "https://m.example", "access_token": TOKEN})
    event = ch.render(post(format="event", timezone="Asia/Shanghai", locale="en",
                           extra={"start": "2026-05-01T11:00:00+00:00", "end": "2026-05-01T12:30:00+00:00",
                                  "place": "Room A", "online_url": "https://meet.example/r"}))
    assert "No. 12 · 增长" in event.preview and "When: 2026-05-01 19:00 – 2026-05-01 20:30" in event.preview
    assert "Where: Room A" in event.preview and "Online: https://meet.example/r" in event.preview
    video = ch.render(post(format="video", extra={"link_url": "https://v.example/1", "duration_seconds": 3723}))
    assert "▶️ 观看 (时长 1:02:03): https://v.example/1" in video.preview
    audio = ch.render(post(format="audio", extra={"file_url": "https://pub.example/media/a.mp3",
                                                  "duration_seconds": 95}))
    assert "🎧 收听 (时长 1:35): https://pub.example/media/a.mp3" in audio.preview
    image = ch.render(post(format="image", images=["https://pub.example/media/a.png"]))
    assert image.meta["images"] == ["https://pub.example/media/a.png"] and "第12期：社群运营" in image.preview
    bare = ch.render(post(brand={}, issue_number=None, theme=""))
    assert bare.preview.startswith("第12期：社群运营\n\nHello")


def test_a_repeat_with_the_same_key_posts_once_and_returns_the_same_status(md):
    ch = adapter(md)
    msg = ch.render(post())
    first = ch.send(msg, idempotency_key="same")
    second = ch.send(msg, idempotency_key="same")
    third = ch.send(msg, idempotency_key="other")
    assert first.remote_id == second.remote_id != third.remote_id
    assert len(md.statuses) == 2
    assert [r.headers["Idempotency-Key"] for r in md.requests if r.path == "/api/v1/statuses"] == \
        ["same", "same", "other"]


def test_instance_limits_are_read_once_and_a_smaller_limit_recuts(md):
    md.max_characters = 200
    ch = adapter(md)
    msg = ch.render(post(body="社群运营的要点。" * 100))
    assert msg.length > 200
    receipt = ch.send(msg, idempotency_key="a")
    sent = md.statuses[-1]["text"]
    assert 180 <= md.length(sent) <= 200 and "…" in sent
    assert "https://pub.example/archive/7" in sent and sent.endswith("#weekly")
    assert receipt.remote_id == md.statuses[-1]["id"]
    ch.send(ch.render(post()), idempotency_key="b")
    assert md.instance_requests == 1  # cached per instance


def test_without_the_recut_the_instance_refuses_a_too_long_status(md):
    md.max_characters = 100
    ch = adapter(md)
    bad = Message(payload={"status": "x" * 101, "visibility": "public"})
    mastodon_module._instances[ch.base] = (float("inf"), dict(mastodon_module.DEFAULT_LIMITS))  # stale: 500
    with pytest.raises(Permanent) as info:
        ch.send(bad, idempotency_key="k")
    assert info.value.code == "422" and "character limit of 100" in info.value.message


def test_images_are_uploaded_then_attached(md, tmp_path):
    ch = adapter(md)
    files = [png(tmp_path / f"{i}.png", c) for i, c in enumerate(("red", "blue", "green", "white", "black"))]
    msg = ch.render(post(images=[f"http://127.0.0.1:9/media/{i}.png" for i in range(5)], image_files=files))
    receipt = ch.send(msg, idempotency_key="k")
    uploads = [r for r in md.requests if r.path == "/api/v2/media"]
    assert len(uploads) == 4  # the instance's max_media_attachments
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in uploads)
    status = md.statuses[-1]
    assert [m["id"] for m in status["media_attachments"]] == receipt.raw["media_ids"] == list(md.media)[:4]
    assert md.media[receipt.raw["media_ids"][0]]["bytes"] == (tmp_path / "0.png").read_bytes()


def test_media_still_processing_is_polled_until_ready(tmp_path):
    md = MastodonDouble(TOKEN, processing_polls=3)
    try:
        ch = adapter(md)
        msg = ch.render(post(images=["http://127.0.0.1:9/a.png"], image_files=[png(tmp_path / "a.png")]))
        ch.send(msg, idempotency_key="k")
        polls = [r for r in md.requests if r.path.startswith("/api/v1/media/")]
        assert len(polls) == 4 and md.statuses[-1]["media_attachments"][0]["url"]
        md.processing_polls = 1000
        ch.media_wait_seconds = 0.2
        with pytest.raises(Retryable) as info:
            ch.send(msg, idempotency_key="k2")
        assert info.value.code == "media_processing"
    finally:
        md.close()


def test_answers_are_classified(md):
    ch = adapter(md)
    msg = ch.render(post())
    reset = (datetime.now(UTC) + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    cases = [
        (Answer(422, {"error": "Validation failed: Text can't be blank"}), Permanent, "422"),
        (Answer(429, {"error": "Too many requests"}, {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                                                      "X-RateLimit-Reset": reset}), RateLimited, "429"),
        (Answer(500, {"error": "We're sorry, but something went wrong on our end."}), Retryable, "500"),
        (Answer(503, "<html>maintenance</html>"), Retryable, "503"),
        (Answer(403, {"error": "This action is not allowed"}), Permanent, "403"),
        (Answer(200, "<html>login</html>"), OutcomeUnknown, "bad_answer"),
    ]
    for i, (answer, kind, code) in enumerate(cases):
        md.answer(answer)
        with pytest.raises(kind) as info:
            ch.send(msg, idempotency_key=f"k{i}")
        assert type(info.value) is kind and info.value.code == code
        assert TOKEN not in str(info.value)
    md.answer(cases[1][0])
    with pytest.raises(RateLimited) as info:
        ch.send(msg, idempotency_key="rl")
    assert 80 <= info.value.retry_after <= 90
    assert info.value.message == "Too many requests"


def test_a_wrong_token_is_permanent_and_not_shown(md):
    ch = Mastodon({"base_url": md.url, "access_token": "wrong-secret-token", "timeout": 2})
    with pytest.raises(Permanent) as info:
        ch.send(ch.render(post()), idempotency_key="k")
    assert info.value.code == "401" and info.value.message == "The access token is invalid"
    assert "wrong-secret-token" not in str(info.value)


def test_no_answer_is_outcome_unknown_and_refused_is_retryable(md):
    ch = adapter(md, timeout=0.3)
    ch.instance_limits()  # cached, so the delay below hits the status
    md.answer(Answer(200, {"id": "1"}, delay=1.0))
    with pytest.raises(OutcomeUnknown):
        ch.send(ch.render(post()), idempotency_key="k")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = Mastodon({"base_url": f"http://127.0.0.1:{port}", "access_token": TOKEN, "timeout": 1})
    with pytest.raises(Retryable) as info:
        closed.send(closed.render(post()), idempotency_key="k")
    assert TOKEN not in str(info.value)
