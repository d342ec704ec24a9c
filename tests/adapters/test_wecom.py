"""The WeCom group robot adapter against a double that checks what qyapi.weixin.qq.com checks."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import traceback

import pytest
from PIL import Image

from channels import registry
from channels.base import Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.text import count
from channels.wecom import ADAPTER, MAX_IMAGES, ZWSP, PartlySent, WeCom
from tests.adapters.wecom_double import BUSY, OK, RATE_LIMITED, WeComDouble, error
from tests.doubles import Answer, Double

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
BRAND = {"intro": "每周一期的社群观察", "signoff": "下周见！", "hashtags": ["社群", "运营"], "color": "#c00",
         "cover": "https://pub.example/media/column-cover.png"}


@pytest.fixture(scope="module")
def _server():
    d = WeComDouble(KEY)
    yield d
    d.close()  # once per file: closing a double waits for its poll interval


@pytest.fixture
def robot(_server):
    with _server.lock:
        _server.script.clear()
        _server.requests.clear()
        _server.delivered.clear()
    return _server


def make_post(**fields) -> Post:
    values = {"title": "社群运营的三个误区", "body": "第一段。\n\n第二段有 **重点**。", "url": "https://pub.example/archive/7",
              "brand": dict(BRAND), "issue_number": 12, "theme": "春季增长", "timezone": "Asia/Shanghai"}
    values.update(fields)
    return Post(**values)


def adapter(double, **config) -> WeCom:
    return WeCom({"key": KEY, "base_url": double.url, "timeout": 2, **config})


def png(path, size=(40, 30), color=(200, 30, 30)) -> str:
    Image.new("RGB", size, color).save(path, "PNG")
    return str(path)


def assert_no_secret(exc_or_text) -> None:
    if isinstance(exc_or_text, str):
        text = exc_or_text
    else:
        text = f"{exc_or_text} {exc_or_text.message!r} {exc_or_text.args!r}"
    assert KEY not in text


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("wecom") is ADAPTER is WeCom
    fields = {f.name: f for f in WeCom.fields}
    assert fields["key"].secret and fields["key"].required
    assert not fields["base_url"].required and fields["base_url"].kind == "url"
    assert fields["base_url"].default == "https://qyapi.weixin.qq.com"
    assert fields["timeout"].kind == "integer"
    assert WeCom.limits.length_unit == "bytes" and WeCom.limits.max_length == 4096
    assert WeCom.limits.rate_limit == "20/minute" and WeCom.idempotent is False


# --- render ------------------------------------------------------------------------------------------

def test_article_is_markdown_with_brand_issue_theme_and_link():
    message = WeCom({"key": KEY}).render(make_post())
    [body] = message.payload["messages"]
    content = body["markdown"]["content"]
    assert body["msgtype"] == "markdown" and content == message.preview
    assert content.startswith('<font color="comment">每周一期的社群观察</font>')
    assert '<font color="info">第12期 · 春季增长</font>' in content
    assert "## 社群运营的三个误区" in content
    assert "第二段有 **重点**。" in content
    assert "[阅读全文](https://pub.example/archive/7)" in content
    assert "#社群 #运营" in content and content.endswith('<font color="comment">下周见！</font>')
    assert message.length == len(content.encode("utf-8")) == count(content, "bytes")
    assert message.length > len(content)  # Chinese: three bytes a character


def test_english_locale_labels():
    content = WeCom({"key": KEY}).render(make_post(locale="en", theme="")).preview
    assert '<font color="info">No. 12</font>' in content and "[Read more](https://pub.example/archive/7)" in content


def test_markup_from_the_text_is_neutralised_and_body_markdown_converted():
    body = ("# 小标题\n\n*斜体* `a` [链接](https://e.x/a_(b)) ![图](https://e.x/i.png)\n\n> 引用\n\n- 一\n- 二\n\n"
            "```\nprint(1)\nx = 2\n```\n\n"
            "提醒 <@all> 或 <font color=\"warning\">红</font>，还有 \\*\\*假粗体\\*\\*\n\n\\# 假标题")
    content = WeCom({"key": KEY}).render(make_post(title="标题 **粗** [x](y)", body=body)).preview
    assert "### 小标题" in content  # body headings sit below the title's level
    assert "斜体 `a` [链接](https://e.x/a_%28b%29) [图](https://e.x/i.png)" in content  # no italics, no images
    assert "> 引用" in content and "- 一\n- 二" in content
    assert "`print(1)`\n`x = 2`" in content
    assert "<@all>" not in content and f"<{ZWSP}@all>" in content
    assert "<font color=\"warning\">红" not in content
    assert "**假粗体**" not in content and f"*{ZWSP}*假粗体*{ZWSP}*" in content
    assert f"\n{ZWSP}# 假标题" in content
    assert f"## 标题 *{ZWSP}*粗*{ZWSP}* [x]{ZWSP}(y)" in content


def test_long_body_is_cut_within_4096_bytes_with_a_link(robot):
    paragraphs = [f"第{i}段：" + "社群运营需要耐心和方法。" * 12 for i in range(60)]
    post = make_post(body="\n\n".join(paragraphs))
    message = adapter(robot).render(post)
    content = message.preview
    assert message.length <= 4096 < count("\n\n".join(paragraphs), "bytes")
    assert message.length > 3800  # it used the room it had
    assert "…" in content and "[阅读全文](https://pub.example/archive/7)" in content
    assert content.count("[阅读全文]") == 1
    assert content.endswith('<font color="comment">下周见！</font>')  # the brand kit survives the cut
    adapter(robot).send(message, idempotency_key="k")  # and WeCom takes it
    assert robot.delivered[0]["markdown"]["content"] == content


def test_cut_never_leaves_a_link_or_bold_open():
    unit = "很长的段落" * 40
    body = "\n\n".join(f"{unit} **重点{i}** [参考{i}](https://e.x/{i}) {unit}" for i in range(30))
    content = WeCom({"key": KEY}).render(make_post(body=body)).preview
    head = content.split("…")[0]
    last = head.split("\n\n")[-1]
    assert last.count("**") % 2 == 0 and last.count("[") == last.count("](")
    assert count(content, "bytes") <= 4096


def test_image_item_is_caption_then_image_messages():
    images = [f"https://pub.example/media/{i}.png" for i in range(6)]
    message = WeCom({"key": KEY}).render(make_post(format="image", images=images))
    kinds = [m["msgtype"] for m in message.payload["messages"]]
    assert kinds == ["markdown"] + ["image"] * MAX_IMAGES
    assert message.meta["images"] == images[:MAX_IMAGES]
    assert "第12期" in message.preview


@pytest.mark.parametrize("fmt", ["video", "audio", "event"])
def test_media_with_a_cover_is_a_news_card(fmt):
    extra = {"start": "2026-03-01T12:00:00+00:00", "end": "2026-03-01T14:00:00+00:00", "place": "上海 A 座",
             "online_url": "https://meet.example/1", "duration_seconds": 3725, "file_url": None, "link_url": None}
    post = make_post(format=fmt, images=["https://pub.example/media/cover.jpg"], extra=extra)
    message = WeCom({"key": KEY}).render(post)
    [body] = message.payload["messages"]
    [article] = body["news"]["articles"]
    assert body["msgtype"] == "news"
    assert article == {"title": "第12期｜社群运营的三个误区", "description": article["description"],
                       "url": "https://pub.example/archive/7", "picurl": "https://pub.example/media/cover.jpg"}
    assert article["description"].startswith("每周一期的社群观察\n第12期 · 春季增长")
    if fmt == "event":
        assert "时间：2026-03-01 20:00 – 2026-03-01 22:00" in article["description"]  # Asia/Shanghai
        assert "地点：上海 A 座" in article["description"]
    else:
        assert "时长：1:02:05" in article["description"]


def test_news_falls_back_to_the_column_cover_and_cuts_title_and_description():
    post = make_post(format="video", title="很长的标题" * 20, body="描述" * 400, extra={"duration_seconds": 65})
    [body] = WeCom({"key": KEY}).render(post).payload["messages"]
    [article] = body["news"]["articles"]
    assert article["picurl"] == BRAND["cover"]
    assert count(article["title"], "bytes") <= 128 and article["title"].endswith("…")
    assert count(article["description"], "bytes") <= 512 and article["description"].endswith("…")


def test_media_without_any_cover_is_markdown_with_its_facts():
    post = make_post(format="event", brand={**BRAND, "cover": None},
                     extra={"start": "2026-03-01T12:00:00+00:00", "end": None, "place": "<b>会议室</b>",
                            "online_url": "https://meet.example/a b"})
    content = WeCom({"key": KEY}).render(post).preview
    assert '> 时间：<font color="warning">2026-03-01 20:00</font>' in content
    assert f"> 地点：<{ZWSP}b>会议室<{ZWSP}/b>" in content
    assert "> [线上参加](https://meet.example/a%20b)" in content
    video = WeCom({"key": KEY}).render(make_post(format="audio", brand={}, extra={"duration_seconds": 59})).preview
    assert '> 时长：<font color="info">0:59</font>' in video and "[收听](https://pub.example/archive/7)" in video


# --- send: classification ----------------------------------------------------------------------------

def test_sends_markdown_with_the_key_in_the_query(robot):
    channel = adapter(robot)
    receipt = channel.send(channel.render(make_post()), idempotency_key="k1")
    [rec] = robot.requests
    assert rec.method == "POST" and rec.path.startswith("/cgi-bin/webhook/send?") and rec.query == {"key": KEY}
    assert rec.headers["Content-Type"].startswith("application/json")
    assert robot.delivered[0]["msgtype"] == "markdown"
    assert receipt.raw["answers"] == [{"errcode": 0, "errmsg": "ok"}]
    assert_no_secret(json.dumps(receipt.raw))


def test_wrong_key_is_permanent_93000_without_the_key(robot):
    channel = WeCom({"key": KEY + "-old", "base_url": robot.url, "timeout": 2})
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "93000" and "invalid webhook url" in info.value.message
    assert KEY not in str(info.value) and "-old" not in str(info.value)


def test_frequency_limit_is_rate_limited_for_a_minute(robot):
    robot.answer(RATE_LIMITED)
    channel = adapter(robot)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "45009" and info.value.retry_after == 60
    assert_no_secret(info.value)


def test_too_long_is_permanent_40058(robot):
    channel = adapter(robot)
    message = channel.render(make_post())
    message.payload["messages"][0]["markdown"]["content"] = "长" * 1400  # 4200 bytes: the double refuses it
    with pytest.raises(Permanent) as info:
        channel.send(message, idempotency_key="k")
    assert info.value.code == "40058" and "4096" in info.value.message
    assert not robot.delivered


@pytest.mark.parametrize(("answer", "error_type", "code"), [
    (BUSY, Retryable, "-1"),
    (error(40008, "invalid message type"), Permanent, "40008"),
    (Answer(502, "<html>bad gateway</html>"), Retryable, "502"),
    (Answer(503, ""), Retryable, "503"),
    (Answer(429, "", {"Retry-After": "7"}), RateLimited, "429"),
    (Answer(403, "forbidden"), Permanent, "403"),
    (Answer(200, "<html>portal login</html>"), OutcomeUnknown, "unreadable_answer"),
    (Answer(200, {"ok": True}), OutcomeUnknown, "unreadable_answer"),
])
def test_answers_are_classified(robot, answer, error_type, code):
    robot.answer(answer)
    channel = adapter(robot)
    with pytest.raises(error_type) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert type(info.value) is error_type and info.value.code == code
    if answer.status == 429:
        assert info.value.retry_after == 7
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
    channel = WeCom({"key": KEY, "base_url": f"http://127.0.0.1:{port}", "timeout": 1})
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert_no_secret(info.value)
    assert_no_secret("".join(traceback.format_exception(info.value)))  # nor in a logged traceback


# --- send: images ----------------------------------------------------------------------------------

def test_image_item_sends_caption_then_images_from_disk(robot, tmp_path):
    files = [png(tmp_path / "a.png"), png(tmp_path / "b.png", color=(0, 90, 200))]
    urls = ["https://pub.example/media/a.png", "https://pub.example/media/b.png"]
    channel = adapter(robot)
    receipt = channel.send(channel.render(make_post(format="image", images=urls, image_files=files)),
                           idempotency_key="k")
    assert [b["msgtype"] for b in robot.delivered] == ["markdown", "image", "image"]
    for body, path in zip(robot.delivered[1:], files, strict=True):
        with open(path, "rb") as fh:
            data = fh.read()
        assert body["image"]["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert receipt.raw["messages"] == 3


def test_large_or_other_images_are_reencoded_as_jpeg_under_2mb(robot, tmp_path):
    rng = random.Random(7)
    noisy = Image.frombytes("RGB", (1400, 1100), rng.randbytes(1400 * 1100 * 3))
    big = tmp_path / "big.png"
    noisy.save(big, "PNG")
    assert big.stat().st_size > 2 * 1024 * 1024
    gif = tmp_path / "small.gif"
    Image.new("P", (20, 20)).save(gif, "GIF")
    channel = adapter(robot)
    message = channel.render(make_post(format="image", images=["https://x/big.png", "https://x/small.gif"],
                                       image_files=[str(big), str(gif)]))
    channel.send(message, idempotency_key="k")
    import base64
    for body in robot.delivered[1:]:
        data = base64.b64decode(body["image"]["base64"])
        assert data[:3] == b"\xff\xd8\xff" and len(data) <= 2 * 1024 * 1024
        Image.open(io.BytesIO(data)).verify()


def test_images_are_downloaded_when_not_on_disk(robot):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
    server = Double(default=Answer(200, buf.getvalue(), {"Content-Type": "image/png"}))
    try:
        channel = adapter(robot)
        channel.send(channel.render(make_post(format="image", images=[f"{server.url}/media/x.png"])),
                     idempotency_key="k")
    finally:
        server.close()
    assert robot.delivered[1]["image"]["md5"] == hashlib.md5(buf.getvalue(), usedforsecurity=False).hexdigest()


def test_a_missing_image_fails_before_anything_is_posted(robot):
    server = Double(default=Answer(404, "not found"))
    try:
        channel = adapter(robot)
        with pytest.raises(Permanent):
            channel.send(channel.render(make_post(format="image", images=[f"{server.url}/gone.png"])),
                         idempotency_key="k")
    finally:
        server.close()
    assert robot.requests == []


def test_a_failure_after_the_caption_is_partly_sent_not_retried(robot, tmp_path):
    files = [png(tmp_path / "a.png"), png(tmp_path / "b.png")]
    robot.answer(OK, RATE_LIMITED)
    channel = adapter(robot)
    message = channel.render(make_post(format="image", images=["https://x/a.png", "https://x/b.png"],
                                       image_files=files))
    with pytest.raises(PartlySent) as info:
        channel.send(message, idempotency_key="k")
    assert isinstance(info.value, OutcomeUnknown)  # the delivery waits for a person instead of repeating
    assert info.value.code == "45009"
    assert "1 of 3 messages went out" in info.value.message and "message 2 (image)" in info.value.message
    assert [b["msgtype"] for b in robot.delivered] == ["markdown"]
    assert_no_secret(info.value)


def test_a_refused_caption_sends_no_images(robot, tmp_path):
    robot.answer(BUSY)
    channel = adapter(robot)
    message = channel.render(make_post(format="image", images=["https://x/a.png"],
                                       image_files=[png(tmp_path / "a.png")]))
    with pytest.raises(Retryable):
        channel.send(message, idempotency_key="k")
    assert len(robot.requests) == 1
