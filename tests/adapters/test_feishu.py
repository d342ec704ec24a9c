from __future__ import annotations

import base64
import json
import socket

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from channels import registry
from channels.base import Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.feishu import ADAPTER, BODY_MAX, Feishu, sign
from channels.text import count
from tests.adapters.feishu_double import SECRET, TOKEN, FeishuDouble, expected_sign, failure, success
from tests.doubles import Answer


def make_post(**overrides) -> Post:
    values = dict(
        title="春季 <聚会> & friends",
        body=("我们**再次**在[公园](https://example.org/park?a=1&b=2)见面，~~旧~~ *新*。"
              "\n\n- 带食物\n- 带朋友\n\n> 引用"),
        url="https://publisher.example/archive/7",
        format="article",
        images=[],
        column="周刊",
        brand={"intro": "大家好 *团队*", "signoff": "下周见", "hashtags": ["社区", "春天"], "color": "#3b82f6",
               "cover": None},
        issue_number=12,
        theme="成长",
        locale="zh_CN",
        timezone="Asia/Shanghai",
    )
    values.update(overrides)
    return Post(**values)


@pytest.fixture(scope="module")
def _server():
    d = FeishuDouble()
    yield d
    d.close()


@pytest.fixture
def feishu(_server):
    """One server for the module (starting and stopping one takes half a second), fresh for each test."""
    server = _server
    server.script.clear()
    server.requests.clear()
    server.clock_offset = 0.0
    return server


def adapter(double, **config) -> Feishu:
    return Feishu({"token": TOKEN, "secret": SECRET, "base_url": double.url, "timeout": 2, **config})


def lines(message, locale="zh_cn") -> list[list[dict]]:
    return message.payload["content"]["post"][locale]["content"]


def texts(message, locale="zh_cn") -> list[str]:
    return ["".join(t["text"] for t in line) for line in lines(message, locale)]


# --- signing -------------------------------------------------------------------------------------

def test_sign_is_hmac_keyed_by_timestamp_and_secret_over_nothing():
    # Computed independently: key = "1599360473\n" + secret, message empty (not DingTalk's order).
    assert sign("test-secret", "1599360473") == expected_sign("1599360473", "test-secret")
    assert sign("test-secret", "1599360473") != sign("test-secret", "1599360474")
    # and with another HMAC implementation: key = timestamp + "\n" + secret, nothing signed
    mac = crypto_hmac.HMAC(b"1599360473\ntest-secret", hashes.SHA256())
    assert sign("test-secret", "1599360473") == base64.b64encode(mac.finalize()).decode()
    dingtalk_order = crypto_hmac.HMAC(b"test-secret", hashes.SHA256())
    dingtalk_order.update(b"1599360473\ntest-secret")
    assert sign("test-secret", "1599360473") != base64.b64encode(dingtalk_order.finalize()).decode()


# --- render --------------------------------------------------------------------------------------

def test_article_is_a_rich_post_with_brand_issue_theme_and_styles():
    message = Feishu({"token": TOKEN}).render(make_post())
    assert message.payload["msg_type"] == "post"
    assert message.payload["content"]["post"]["zh_cn"]["title"] == "春季 <聚会> & friends"
    content = lines(message)
    assert content[0] == [{"tag": "text", "text": "大家好 *团队*"}]  # escaped in the template, literal here
    assert [{"tag": "text", "text": "第12期 · 成长", "style": ["bold"]}] in content
    body = next(line for line in content if line and line[0]["text"] == "我们")
    assert body[1] == {"tag": "text", "text": "再次", "style": ["bold"]}
    assert body[3] == {"tag": "a", "text": "公园", "href": "https://example.org/park?a=1&b=2"}
    assert {"tag": "text", "text": "旧", "style": ["lineThrough"]} in body
    assert {"tag": "text", "text": "新", "style": ["italic"]} in body
    assert "• 带食物" in texts(message) and "• 带朋友" in texts(message) and "┃ 引用" in texts(message)
    assert [{"tag": "a", "text": "阅读全文", "href": "https://publisher.example/archive/7"}] in content
    assert "#社区 #春天" in texts(message)
    assert content[-1] == [{"tag": "text", "text": "下周见", "style": ["italic"]}]
    assert message.length == count(message.preview, "bytes")
    assert message.preview.startswith("春季 <聚会> & friends\n\n大家好 *团队*")


def test_english_locale_uses_en_us_and_no_dot_number():
    message = Feishu({"token": TOKEN}).render(make_post(locale="en", theme=""))
    assert list(message.payload["content"]["post"]) == ["en_us"]
    assert "No. 12" in texts(message, "en_us") and "Read the full post" in texts(message, "en_us")


def test_image_post_links_each_image():
    images = ["https://publisher.example/media/a.png", "https://publisher.example/media/b.png"]
    content = lines(Feishu({"token": TOKEN}).render(make_post(format="image", images=images)))
    assert [{"tag": "a", "text": "图片 1", "href": images[0]}] in content
    assert [{"tag": "a", "text": "图片 2", "href": images[1]}] in content


def test_video_and_audio_link_the_media():
    video = Feishu({"token": TOKEN}).render(make_post(format="video", extra={
        "file_url": "https://publisher.example/media/v.mp4", "link_url": "", "duration_seconds": 125}))
    line = next(line for line in lines(video) if line[0]["text"].startswith("▶"))
    assert line == [{"tag": "text", "text": "▶ 观看:", "style": ["bold"]}, {"tag": "text", "text": " "},
                    {"tag": "a", "text": "春季 <聚会> & friends", "href": "https://publisher.example/media/v.mp4"},
                    {"tag": "text", "text": " (2:05)"}]
    audio = Feishu({"token": TOKEN}).render(make_post(format="audio", locale="en", extra={
        "file_url": None, "link_url": "https://pod.example/1", "duration_seconds": None}))
    assert any(t.startswith("🎧 Listen: ") for t in texts(audio, "en_us"))


def test_event_shows_local_time_place_and_link():
    message = Feishu({"token": TOKEN}).render(make_post(format="event", extra={
        "start": "2026-05-01T02:00:00+00:00", "end": "2026-05-01T04:30:00+00:00", "place": "3号楼 - 2. 会议室 *A*",
        "online_url": "https://meet.example/x"}))
    shown = texts(message)
    assert "时间: 2026-05-01 10:00 – 2026-05-01 12:30 (Asia/Shanghai)" in shown
    assert "地点: 3号楼 - 2. 会议室 *A*" in shown
    online = next(line for line in lines(message) if line[0]["text"].startswith("线上"))
    assert online[-1] == {"tag": "a", "text": "https://meet.example/x", "href": "https://meet.example/x"}


def test_a_long_body_is_cut_to_fit_twenty_kilobytes_with_the_link_kept():
    body = "\n\n".join(f"第{i}段 " + "很长的内容" * 200 for i in range(20))  # ~60 KB of UTF-8
    message = Feishu({"token": TOKEN}).render(make_post(body=body))
    request_bytes = len(json.dumps({"timestamp": "1700000000", "sign": "x" * 44, **message.payload},
                                   ensure_ascii=False, separators=(",", ":")).encode())
    assert request_bytes <= BODY_MAX
    assert request_bytes > BODY_MAX - 3000  # cut near the limit, not emptied
    shown = "\n".join(texts(message))
    assert "…" in shown and "第0段" in shown and "第19段" not in shown
    assert [{"tag": "a", "text": "阅读全文", "href": "https://publisher.example/archive/7"}] in lines(message)
    assert message.length <= BODY_MAX


# --- send ----------------------------------------------------------------------------------------

def test_signed_send_is_accepted(feishu):
    channel = adapter(feishu)
    message = channel.render(make_post())
    receipt = channel.send(message, idempotency_key="k")
    assert receipt.raw == {"code": 0, "data": {}, "msg": "success"} and receipt.remote_id is None
    sent = feishu.requests[-1].json()
    assert sent["msg_type"] == "post" and sent["content"] == message.payload["content"]
    assert sent["sign"] == expected_sign(sent["timestamp"], SECRET) and isinstance(sent["timestamp"], str)


def test_lark_uses_the_lark_origin():
    assert Feishu({"token": "t", "lark": True}).url() == "https://open.larksuite.com/open-apis/bot/v2/hook/t"
    assert Feishu({"token": "t", "lark": "false", "base_url": "https://open.feishu.cn"}).url() == \
        "https://open.feishu.cn/open-apis/bot/v2/hook/t"


def test_unsigned_bot_gets_no_signature():
    d = FeishuDouble(secret=None)
    try:
        Feishu({"token": TOKEN, "base_url": d.url}).send(Feishu({"token": TOKEN}).render(make_post()),
                                                          idempotency_key="k")
        assert "sign" not in d.requests[-1].json() and "timestamp" not in d.requests[-1].json()
    finally:
        d.close()


def test_wrong_secret_is_refused_with_19021(feishu):
    channel = adapter(feishu, secret="not-the-secret")
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "19021" and "sign match fail" in info.value.message
    assert "not-the-secret" not in str(info.value) and TOKEN not in str(info.value)


def test_a_clock_off_by_more_than_an_hour_is_refused(feishu):
    feishu.clock_offset = 3700
    channel = adapter(feishu)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "19021"


def test_wrong_token_and_keyword_errors_are_permanent():
    d = FeishuDouble(keyword="日报")
    try:
        channel = Feishu({"token": TOKEN, "secret": SECRET, "base_url": d.url, "timeout": 2})
        with pytest.raises(Permanent) as info:
            channel.send(channel.render(make_post()), idempotency_key="k")
        assert (info.value.code, info.value.message) == ("19024", "Key Words Not Found")
        channel.send(channel.render(make_post(title="日报")), idempotency_key="k")  # with the keyword it passes
        wrong = Feishu({"token": "other-token", "secret": SECRET, "base_url": d.url, "timeout": 2})
        with pytest.raises(Permanent) as info:
            wrong.send(wrong.render(make_post()), idempotency_key="k")
        assert info.value.code == "19001"
    finally:
        d.close()


@pytest.mark.parametrize("answer,code", [(failure(19022, "Ip Not Allowed"), "19022"),
                                         (failure(9499, "Bad Request", 400), "9499"),
                                         (failure(19024, "Key Words Not Found", 400), "19024")])
def test_documented_errors_are_permanent_whatever_the_status(feishu, answer, code):
    feishu.answer(answer)
    channel = adapter(feishu)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == code


def test_a_malformed_body_is_refused_by_the_double(feishu):
    channel = adapter(feishu)
    message = channel.render(make_post())
    message.payload["content"]["post"]["zh_cn"]["content"].append([{"tag": "img", "image_url": "https://x/y.png"}])
    with pytest.raises(Permanent) as info:
        channel.send(message, idempotency_key="k")
    assert info.value.code == "9499"


@pytest.mark.parametrize("status", [200, 400])
def test_frequency_limit_is_rate_limited(feishu, status):
    feishu.answer(failure(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]", status))
    channel = adapter(feishu)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "11232" and info.value.retry_after is None


def test_platform_rate_limit_header_is_read(feishu):
    feishu.answer(Answer(429, {"code": 99991400, "msg": "request trigger frequency limit"},
                         {"x-ogw-ratelimit-reset": "52"}))
    channel = adapter(feishu)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.retry_after == 52.0


def test_older_status_code_answers_are_understood(feishu):
    feishu.answer(Answer(200, {"Extra": None, "StatusCode": 0, "StatusMessage": "success"}),
                  Answer(200, {"Extra": None, "StatusCode": 19021, "StatusMessage": "sign match fail"}))
    channel = adapter(feishu)
    assert channel.send(channel.render(make_post()), idempotency_key="k").raw["StatusCode"] == 0
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "19021" and info.value.message == "sign match fail"


def test_message_id_is_kept_when_the_answer_has_one(feishu):
    feishu.answer(success(message_id="om_123"))
    channel = adapter(feishu)
    assert channel.send(channel.render(make_post()), idempotency_key="k").remote_id == "om_123"


def test_server_errors_are_retryable(feishu):
    feishu.answer(Answer(502, "<html>bad gateway</html>"), Answer(500, {"code": 1, "msg": "internal error"}))
    channel = adapter(feishu)
    for _ in range(2):
        with pytest.raises(Retryable):
            channel.send(channel.render(make_post()), idempotency_key="k")


def test_a_200_without_a_code_is_not_taken_for_success(feishu):
    feishu.answer(Answer(200, "<html>gateway</html>"))
    channel = adapter(feishu)
    with pytest.raises(OutcomeUnknown):
        channel.send(channel.render(make_post()), idempotency_key="k")


def test_no_answer_is_outcome_unknown(feishu):
    feishu.answer(Answer(200, {"code": 0, "data": {}, "msg": "success"}, delay=1.0))
    channel = adapter(feishu, timeout=0.3)
    with pytest.raises(OutcomeUnknown) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert TOKEN not in str(info.value) and SECRET not in str(info.value)


def test_refused_connection_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = Feishu({"token": TOKEN, "secret": SECRET, "base_url": f"http://127.0.0.1:{port}", "timeout": 1})
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert TOKEN not in str(info.value)


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("feishu") is ADAPTER is Feishu
    assert Feishu.secret_fields() == {"token", "secret"}
    assert Feishu.limits.rate_limit == "5/second;100/minute" and not Feishu.idempotent
    assert Feishu.validate_config({"token": "t"}) == {}
