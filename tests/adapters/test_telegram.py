"""The Telegram adapter against a Bot API double that parses MarkdownV2 like the real service."""

from __future__ import annotations

import random
import socket

import pytest
from PIL import Image

from channels import registry
from channels.base import Message, Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.telegram import ADAPTER, Telegram, escape, escape_code, escape_url, visible
from tests.adapters.telegram_double import EntityError, TelegramDouble, error, parse_markdown_v2, utf16
from tests.doubles import Answer, Double

TOKEN = "123456789:AAE-very-secret-bot-token_xyz"
CHANNEL = {"id": -1001234567890, "type": "channel", "title": "社群", "username": "community_cn"}
GROUP = {"id": -1009876543210, "type": "supergroup", "title": "内部群"}
NASTY = "_*[]()~`>#+-=|{}.!\\"


@pytest.fixture
def tg():
    double = TelegramDouble(TOKEN, {"@community_cn": CHANNEL, str(GROUP["id"]): GROUP})
    yield double
    double.close()


def adapter(double, chat="@community_cn", **config) -> Telegram:
    return Telegram({"bot_token": TOKEN, "chat_id": chat, "base_url": double.url, "timeout": 2, **config})


def post(**fields) -> Post:
    values = dict(title="第12期：社群运营 (v2.0)!", body="**Hello** community.", url="https://pub.example/archive/7",
                  brand={"intro": "每周一读 - 欢迎!", "signoff": "— 社群团队", "hashtags": ["社群", "ops_tips"]},
                  issue_number=12, theme="增长 #1", item_id=7)
    values.update(fields)
    return Post(**values)


def png(path, colour="red"):
    Image.new("RGB", (8, 8), colour).save(path)
    return str(path)


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("telegram") is ADAPTER
    assert "bot_token" in ADAPTER.secret_fields()
    assert ADAPTER.idempotent is False
    assert ADAPTER.limits.length_unit == "utf16" and ADAPTER.limits.max_length == 4096


def test_escaping_rules():
    assert escape(NASTY) == "".join("\\" + c for c in NASTY)
    assert escape_code("a`b\\c_*") == "a\\`b\\\\c_*"
    assert escape_url("https://x.example/a_(b)\\c") == "https://x.example/a_(b\\)\\\\c"
    for text in (NASTY, "1+1=2. done!", "v2.0 (beta)", "#tag > x"):
        assert parse_markdown_v2(escape(text)) == text
    with pytest.raises(EntityError, match="Character '.' is reserved"):
        parse_markdown_v2("Hello.")


def test_article_is_sent_as_markdown_v2_and_parses(tg):
    ch = adapter(tg)
    msg = ch.render(post(body="# Plan_A\n\nHello **bold _it_** and `a`b\\\\c` costs 1+1=2 (really)! "
                              "[docs](https://x.example/a_(b)\\c) ~~old~~\n\n- one.\n- two!\n\n"
                              "1. first\n2. second\n\n> a quote.\n\n```py\nprint('`\\\\')\n```"))
    receipt = ch.send(msg, idempotency_key="k1")
    req = tg.requests[-1]
    assert req.path == f"/bot{TOKEN}/sendMessage"
    body = req.json()
    assert body["parse_mode"] == "MarkdownV2" and body["chat_id"] == "@community_cn"
    shown = tg.sent[-1]["text"]
    assert shown == msg.preview  # what Telegram shows is exactly the adapter's preview
    assert msg.length == utf16(shown)
    for expected in ("每周一读 - 欢迎!", "第12期 · 增长 #1", "第12期：社群运营 (v2.0)!", "Plan_A", "1+1=2 (really)!",
                     "• one.", "1. first", "a quote.", "print('`\\\\')", "#社群 #ops_tips", "— 社群团队", "阅读全文"):
        assert expected in shown, expected
    assert "[docs](https://x.example/a_(b\\)%5Cc)" in body["text"]  # the parser percent-encodes a backslash
    assert "*第12期：社群运营 \\(v2\\.0\\)\\!*" in body["text"]
    assert "~old~" in body["text"] and "*Plan\\_A*" in body["text"]
    assert receipt.remote_id == "101" and receipt.url == "https://t.me/community_cn/101"
    assert body["link_preview_options"] == {"url": "https://pub.example/archive/7"}


def test_markup_that_telegram_reads_differently(tg):
    ch = adapter(tg)
    # "_a__b_" would open an underline; code may not sit inside bold; a nested em must not double up
    msg = ch.render(post(body="*a*_b_ **bold `code` here** *x _y_ z* [*e* `f`](https://e.x)\n\n## `g` h"))
    assert "_a_**_b_" in msg.payload["text"] and "*bold code here*" in msg.payload["text"]
    assert "[_e_ f](https://e.x)" in msg.payload["text"] and "*g h*" in msg.payload["text"]
    ch.send(msg, idempotency_key="k")
    assert "ab bold code here x y z e f\n\ng h" in tg.sent[-1]["text"] == msg.preview


def test_random_nasty_bodies_always_parse():
    pieces = ["**b**", "_i_", "*i*", "`c`", "~~s~~", "[l](https://e.x/(y))", "\n\n", "\n- ", "\n1. ", "> ", "# ",
              "\n```\n`\\\n```\n", "\\", "`", "*", "_", "[", "]", "(", ")", "!", ".", "#", "|", "||", "{", "}",
              "<", "&", "😀", "中文", " ", "x", "__", "***"]
    rng = random.Random(20261123)
    ch = Telegram({"chat_id": "@c", "bot_token": TOKEN})
    for _ in range(300):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        title = "".join(rng.choice(NASTY + "ab ") for _ in range(8))
        msg = ch.render(post(body=body, title=title))
        try:
            shown = parse_markdown_v2(msg.payload["text"])
        except EntityError as exc:  # pragma: no cover - the failure message is the useful part
            pytest.fail(f"{body!r}: {exc}\n{msg.payload['text']}")
        assert shown == msg.preview == visible(msg.payload["text"])


def test_random_long_bodies_are_cut_within_the_limit_and_still_parse():
    pieces = ["**b**", "_i_", "`c`", "[l](https://e.x/(y))", "\n\n", "\n- ", "\n1. ", "> ", "# ", "\n```\n`\\\n```\n",
              "\\", "`", "*", "_", "[", "]", "(", ")", ".", "😀", "中文段落内容。" * 5, " ", "x" * 30]
    rng = random.Random(7)
    ch = Telegram({"chat_id": "@c", "bot_token": TOKEN})
    for _ in range(40):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(100, 600)))
        msg = ch.render(post(body=body, images=["https://pub.example/m.png"] if rng.random() < 0.5 else [],
                             brand={"intro": "intro!" * rng.choice((0, 1, 300))}))
        text = msg.payload.get("text") or msg.payload.get("caption")
        assert parse_markdown_v2(text) == msg.preview
        assert msg.length == utf16(msg.preview) <= msg.meta["limit"]


def test_long_text_is_cut_to_4096_utf16_units_with_the_link(tg):
    paragraph = "社群运营😀要点：" + "增长与留存。" * 40
    body = "\n\n".join(f"{i}. {paragraph}" for i in range(40))
    ch = adapter(tg)
    msg = ch.render(post(body=body))
    assert len(msg.preview) < 4096 < utf16(body)  # emoji count twice: characters alone would overrun
    # graceful: at most about one paragraph of room is given up for a clean break
    assert 4096 - 2 * utf16(paragraph) < msg.length <= 4096 and msg.length == utf16(msg.preview)
    assert "…" in msg.preview and "阅读全文" in msg.preview and msg.preview.rstrip().endswith("— 社群团队")
    assert "(https://pub.example/archive/7)" in msg.payload["text"]
    ch.send(msg, idempotency_key="k")
    assert tg.sent[-1]["text"] == msg.preview


def test_formats_event_video_audio_and_english_issue_label():
    ch = Telegram({"chat_id": "@c", "bot_token": TOKEN})
    event = ch.render(post(format="event", timezone="Asia/Shanghai", locale="en",
                           extra={"start": "2026-05-01T11:00:00+00:00", "end": "2026-05-01T12:30:00+00:00",
                                  "place": "Room (A)", "online_url": "https://meet.example/r?id=1"}))
    assert "No. 12 · 增长 #1" in event.preview
    assert "When: 2026-05-01 19:00 – 2026-05-01 20:30" in event.preview
    assert "Where: Room (A)" in event.preview and "[Online](https://meet.example/r?id=1)" in event.payload["text"]
    video = ch.render(post(format="video", extra={"link_url": "https://v.example/1", "duration_seconds": 3723}))
    assert "▶️ 观看 (时长 1:02:03)" in video.preview and "(https://v.example/1)" in video.payload["text"]
    audio = ch.render(post(format="audio", extra={"file_url": "https://pub.example/media/a.mp3",
                                                  "duration_seconds": 95}))
    assert "🎧 收听 (时长 1:35)" in audio.preview
    for msg in (event, video, audio):
        assert parse_markdown_v2(msg.payload["text"]) == msg.preview
    bare = ch.render(post(brand={}, issue_number=None, theme="", format="article"))
    assert bare.preview.startswith("第12期：社群运营 (v2.0)!")


def test_image_item_goes_as_one_photo_with_a_caption_cut_to_1024(tg, tmp_path):
    path = png(tmp_path / "cover.png")
    ch = adapter(tg)
    msg = ch.render(post(format="image", body="长文。" * 800, images=["http://127.0.0.1:9/media/cover.png"],
                         image_files=[path]))
    assert msg.meta["method"] == "sendPhoto" and 1000 < msg.length <= 1024
    receipt = ch.send(msg, idempotency_key="k")
    sent = tg.sent[-1]
    assert sent["method"] == "sendPhoto" and sent["photos"][0] == (tmp_path / "cover.png").read_bytes()
    assert sent["captions"][0] == msg.preview and "阅读全文" in msg.preview and "…" in msg.preview
    assert sent["fields"]["parse_mode"] == "MarkdownV2" and sent["fields"]["chat_id"] == "@community_cn"
    assert receipt.remote_id == "101"


def test_several_images_go_as_one_media_group_downloaded_when_not_on_disk(tg, tmp_path):
    picture = tmp_path / "b.png"
    png(picture, "blue")
    images = Double(Answer(200, picture.read_bytes(), {"Content-Type": "image/png"}))
    try:
        ch = adapter(tg, chat=str(GROUP["id"]))
        msg = ch.render(post(images=[f"{images.url}/a.png", f"{images.url}/b.png", f"{images.url}/c.png"]))
        receipt = ch.send(msg, idempotency_key="k")
    finally:
        images.close()
    sent = tg.sent[-1]
    assert sent["method"] == "sendMediaGroup" and len(sent["photos"]) == 3
    assert sent["captions"][0] == msg.preview and sent["captions"][1:] == ["", ""]
    assert receipt.remote_id == "101" and receipt.raw["message_ids"] == [101, 102, 103]
    assert receipt.url is None  # a private group has no public link


def test_link_preview_can_be_switched_off(tg):
    ch = adapter(tg, disable_link_preview=True)
    ch.send(ch.render(post()), idempotency_key="k")
    assert tg.requests[-1].json()["link_preview_options"] == {"is_disabled": True}


def _send(ch, text="hello"):
    return ch.send(Message(payload={"chat_id": ch.config["chat_id"], "text": text, "parse_mode": "MarkdownV2"},
                           meta={"method": "sendMessage"}), idempotency_key="k")


def test_answers_are_classified(tg):
    ch = adapter(tg)
    cases = [
        (error(429, "Too Many Requests: retry after 17", retry_after=17), RateLimited, "429"),
        (error(400, "Bad Request: message is too long"), Permanent, "400"),
        (error(403, "Forbidden: bot was kicked from the channel chat"), Permanent, "403"),
        (error(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001999),
         Permanent, "400"),
        (error(500, "Internal Server Error"), Retryable, "500"),
        (Answer(502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}), Retryable, "502"),
        (Answer(200, "<html>proxy login</html>"), OutcomeUnknown, "bad_answer"),
    ]
    for answer, kind, code in cases:
        tg.answer(answer)
        with pytest.raises(kind) as info:
            _send(ch)
        assert type(info.value) is kind and info.value.code == code
        assert TOKEN not in str(info.value) and "secret" not in str(info.value)
    tg.answer(error(429, "Too Many Requests: retry after 17", retry_after=17))
    with pytest.raises(RateLimited) as info:
        _send(ch)
    assert info.value.retry_after == 17
    tg.answer(error(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001999))
    with pytest.raises(Permanent, match="-1001999"):
        _send(ch)


def test_the_double_refuses_what_telegram_refuses(tg):
    with pytest.raises(Permanent) as info:  # an unescaped "." really fails to parse
        _send(adapter(tg), "v2.0 released")
    assert "can't parse entities" in info.value.message and info.value.code == "400"
    with pytest.raises(Permanent, match="chat not found"):
        _send(adapter(tg, chat="@nobody"))
    with pytest.raises(Permanent, match="message is too long"):
        _send(adapter(tg), "x" * 4097)
    wrong = Telegram({"bot_token": "999:wrong-token-secret", "chat_id": "@community_cn", "base_url": tg.url})
    with pytest.raises(Permanent) as info:
        wrong.send(wrong.render(post()), idempotency_key="k")
    assert info.value.code == "401" and info.value.message == "Unauthorized"
    assert "wrong-token-secret" not in str(info.value)


def test_no_answer_is_outcome_unknown_and_refused_is_retryable(tg):
    tg.answer(Answer(200, {"ok": True, "result": {"message_id": 1}}, delay=1.0))
    ch = Telegram({"bot_token": TOKEN, "chat_id": "@community_cn", "base_url": tg.url, "timeout": 0.3})
    with pytest.raises(OutcomeUnknown) as info:
        _send(ch)
    assert TOKEN not in str(info.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = Telegram({"bot_token": TOKEN, "chat_id": "@c", "base_url": f"http://127.0.0.1:{port}", "timeout": 1})
    with pytest.raises(Retryable) as info:
        _send(closed)
    assert TOKEN not in str(info.value)


def test_receipt_holds_no_secret(tg):
    ch = adapter(tg)
    receipt = ch.send(ch.render(post()), idempotency_key="k")
    assert TOKEN not in repr(receipt)
