"""The DingTalk custom robot adapter against a double that verifies the signature like oapi.dingtalk.com."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import traceback
from types import SimpleNamespace
from urllib.parse import quote_plus

import pytest

from channels import dingtalk, registry
from channels.base import Post
from channels.dingtalk import ADAPTER, DingTalk
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.text import count
from tests.adapters.dingtalk_double import BUSY, TOO_FAST, DingTalkDouble, error
from tests.doubles import Answer

TOKEN = "e9a8118c8a3dc0f7a1b2c3d4e5f60718293a4b5c6d7e8f9012345685fab41df2"
SECRET = "SEC10d6e79b42bd94be0d0d603843651aa2ccd7186db6edbc9f8e7d6c5b4a3cf421cd"
BRAND = {"intro": "每周一期的社群观察", "signoff": "下周见！", "hashtags": ["社群", "运营"], "color": "#c00",
         "cover": "https://pub.example/media/column-cover.png"}


@pytest.fixture(scope="module")
def _servers():
    signed, keyword = DingTalkDouble(TOKEN, SECRET), DingTalkDouble(TOKEN, keywords=("社群",))
    yield signed, keyword
    signed.close()
    keyword.close()


def _reset(d):
    with d.lock:
        d.script.clear()
        d.requests.clear()
        d.delivered.clear()
    return d


@pytest.fixture
def robot(_servers):
    """A robot secured by signing (加签)."""
    return _reset(_servers[0])


@pytest.fixture
def keyword_robot(_servers):
    """A robot secured by the keyword 社群, without signing."""
    return _reset(_servers[1])


def make_post(**fields) -> Post:
    values = {"title": "社群运营的三个误区", "body": "第一段。\n\n第二段有 **重点**。", "url": "https://pub.example/archive/7",
              "brand": dict(BRAND), "issue_number": 12, "theme": "春季增长", "timezone": "Asia/Shanghai"}
    values.update(fields)
    return Post(**values)


def adapter(double, **config) -> DingTalk:
    values = {"access_token": TOKEN, "secret": SECRET, "base_url": double.url, "timeout": 2}
    values.update(config)
    return DingTalk({k: v for k, v in values.items() if v is not None})


def assert_no_secret(value) -> None:
    text = value if isinstance(value, str) else f"{value} {value.message!r} {value.args!r}"
    assert TOKEN not in text and SECRET not in text


def test_registry_finds_the_adapter_and_fields():
    registry.available.cache_clear()
    assert registry.get("dingtalk") is ADAPTER is DingTalk
    fields = {f.name: f for f in DingTalk.fields}
    assert fields["access_token"].secret and fields["access_token"].required
    assert fields["secret"].secret and not fields["secret"].required
    assert fields["base_url"].default == "https://oapi.dingtalk.com" and fields["timeout"].kind == "integer"
    assert DingTalk.limits.rate_limit == "20/minute" and DingTalk.limits.length_unit == "bytes"
    assert DingTalk.validate_config({"access_token": "t"}) == {}
    errors = DingTalk.validate_config({"access_token": "t", "secret": "abc"})
    assert list(errors) == ["secret"] and "starts with SEC" in errors["secret"]
    assert DingTalk.validate_config({}) == {"access_token": "required"}


def test_sign_matches_the_documented_recipe():
    timestamp = "1577000000000"
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest())
    assert dingtalk.sign(SECRET, timestamp) == expected.decode()


# --- render ------------------------------------------------------------------------------------------

def test_article_is_markdown_with_cover_brand_issue_and_link():
    message = DingTalk({"access_token": TOKEN}).render(make_post(images=["https://pub.example/media/c.jpg"]))
    payload = message.payload
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == "第12期｜社群运营的三个误区"
    text = payload["markdown"]["text"]
    assert text == message.preview and message.length == count(text, "bytes")
    assert text.startswith("每周一期的社群观察\n\n**第12期 · 春季增长**\n\n## 社群运营的三个误区")
    assert "![](https://pub.example/media/c.jpg)" in text  # the item's cover, not the column's
    assert "[阅读全文](https://pub.example/archive/7)" in text
    assert "#社群 #运营" in text and text.endswith("> 下周见！")


def test_image_item_shows_every_picture_inline():
    images = [f"https://pub.example/media/{i}.jpg" for i in range(3)]
    text = DingTalk({"access_token": TOKEN}).render(make_post(format="image", images=images)).preview
    assert all(f"![]({u})" in text for u in images)
    assert text.index("## 社群运营") < text.index("![](https://pub.example/media/0.jpg)") < text.index("第一段")


@pytest.mark.parametrize("fmt", ["video", "audio", "event"])
def test_media_is_an_action_card_opening_the_item(fmt):
    extra = {"start": "2026-03-01T12:00:00+00:00", "end": "2026-03-01T14:00:00+00:00", "place": "上海",
             "online_url": "https://meet.example/1", "duration_seconds": 125}
    message = DingTalk({"access_token": TOKEN}).render(make_post(format=fmt, extra=extra, locale="en"))
    card = message.payload["actionCard"]
    assert message.payload["msgtype"] == "actionCard"
    assert card["singleURL"] == "https://pub.example/archive/7" and card["singleTitle"] == "Open"
    assert card["title"] == "No. 12｜社群运营的三个误区"
    assert card["text"].startswith(f"![]({BRAND['cover']})")  # no item image: the column's cover
    if fmt == "event":
        assert "> Time：**2026-03-01 20:00 – 2026-03-01 22:00**" in card["text"]
        assert "> [Join online](https://meet.example/1)" in card["text"]
    else:
        assert "> Duration：2:05" in card["text"]


def test_body_markdown_keeps_italics_and_images_and_neutralises_markup():
    body = "*斜体* ![图](https://e.x/i.png) <font color=red>x</font> \\*\\*假\\*\\*\n\n\\> 假引用"
    text = DingTalk({"access_token": TOKEN}).render(make_post(body=body)).preview
    assert "*斜体* ![图](https://e.x/i.png)" in text
    assert "<font" not in text and "**假**" not in text
    assert "\n\n\u200b> 假引用" in text


def test_long_body_is_cut_so_the_json_body_fits_20000_bytes(robot):
    body = "\n\n".join(f"第{i}段：" + "社群运营需要耐心、方法和\"引号\"。" * 10 for i in range(120))
    channel = adapter(robot)
    message = channel.render(make_post(body=body))
    size = len(json.dumps(message.payload, ensure_ascii=False, separators=(",", ":")).encode())
    assert 19000 < size <= 20000 < count(body, "bytes")
    assert "…" in message.preview and "[阅读全文](https://pub.example/archive/7)" in message.preview
    assert message.preview.endswith("> 下周见！")
    channel.send(message, idempotency_key="k")
    assert robot.delivered == [message.payload]


# --- send ----------------------------------------------------------------------------------------------

def test_signed_send_is_accepted_and_encodes_the_sign_once(robot):
    channel = adapter(robot)
    receipt = channel.send(channel.render(make_post()), idempotency_key="k")
    [rec] = robot.requests
    query = rec.query
    assert query["access_token"] == TOKEN and abs(int(query["timestamp"]) - time.time() * 1000) < 60_000
    assert f"sign={quote_plus(dingtalk.sign(SECRET, query['timestamp']))}" in rec.path  # URL-encoded, once
    assert robot.delivered[0]["msgtype"] == "markdown"
    assert receipt.raw == {"errcode": 0, "errmsg": "ok"}
    assert_no_secret(json.dumps(receipt.raw))


def test_wrong_secret_is_permanent_310000(robot):
    channel = adapter(robot, secret="SEC" + "0" * 64)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "310000" and "sign not match" in info.value.message
    assert not robot.delivered
    assert "SEC" + "0" * 64 not in str(info.value)


def test_a_clock_off_by_more_than_an_hour_is_refused(robot, monkeypatch):
    monkeypatch.setattr(dingtalk, "time", SimpleNamespace(time=lambda: time.time() - 3700))  # our clock only
    channel = adapter(robot)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "310000" and "invalid timestamp" in info.value.message


def test_missing_signature_on_a_signed_robot_is_refused(robot):
    channel = adapter(robot, secret=None)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "310000"


def test_unknown_token_is_permanent_300001(robot):
    channel = adapter(robot, access_token="0" * 64)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "300001" and info.value.message == "token is not exist"


def test_keyword_robot_needs_no_signature_but_the_keyword(keyword_robot):
    channel = adapter(keyword_robot, secret=None)
    channel.send(channel.render(make_post()), idempotency_key="k")  # 社群 is in the intro and hashtags
    assert "sign" not in keyword_robot.requests[0].query and len(keyword_robot.delivered) == 1
    bare = make_post(brand={}, title="周报", body="内容")
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(bare), idempotency_key="k")
    assert info.value.code == "310000" and "keywords not in content" in info.value.message


def test_too_fast_is_rate_limited_for_ten_minutes(robot):
    robot.answer(TOO_FAST)
    channel = adapter(robot)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "130101" and info.value.retry_after == 600
    assert_no_secret(info.value)


def test_oversized_body_is_permanent_460101(robot):
    channel = adapter(robot)
    message = channel.render(make_post())
    message.payload["markdown"]["text"] = "长" * 7000  # 21,000 bytes
    with pytest.raises(Permanent) as info:
        channel.send(message, idempotency_key="k")
    assert info.value.code == "460101" and "20000" in info.value.message


@pytest.mark.parametrize(("answer", "error_type", "code"), [
    (BUSY, Retryable, "-1"),
    (error(410100, "发送速度太快而限流"), RateLimited, "410100"),
    (error(400102, "机器人已停用"), Permanent, "400102"),
    (error(430101, "含有不安全的外链"), Permanent, "430101"),
    (Answer(500, "<html>error</html>"), Retryable, "500"),
    (Answer(504, ""), Retryable, "504"),
    (Answer(404, ""), Permanent, "404"),
    (Answer(200, "<html>gateway</html>"), OutcomeUnknown, "unreadable_answer"),
])
def test_answers_are_classified(robot, answer, error_type, code):
    robot.answer(answer)
    channel = adapter(robot)
    with pytest.raises(error_type) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert type(info.value) is error_type and info.value.code == code
    assert_no_secret(info.value)


def test_no_answer_is_outcome_unknown(robot):
    robot.answer(Answer(200, {"errcode": 0, "errmsg": "ok"}, delay=1.0))
    channel = adapter(robot, timeout=0.3)
    with pytest.raises(OutcomeUnknown) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "timeout"
    assert_no_secret(info.value)
    assert_no_secret("".join(traceback.format_exception(info.value)))


def test_refused_connection_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = DingTalk({"access_token": TOKEN, "secret": SECRET, "base_url": f"http://127.0.0.1:{port}", "timeout": 1})
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert_no_secret(info.value)
    assert_no_secret("".join(traceback.format_exception(info.value)))  # nor in a logged traceback
