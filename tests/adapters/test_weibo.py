from __future__ import annotations

import pytest
from PIL import Image

from channels import registry
from channels.base import Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.text import count
from channels.weibo import ADAPTER, Weibo
from tests.adapters.weibo_double import WeiboDouble, parse_form, weibo_error
from tests.doubles import Answer

TOKEN = "2.00weibo-secret-token-ABCDEF"
URL = "https://news.example.cn/archive/12"
BRAND = {"intro": "周二产品夜话", "signoff": "下周见", "hashtags": ["产品", "社群"], "color": "#c0392b",
         "cover": None}


@pytest.fixture(scope="module")
def server():
    d = WeiboDouble(TOKEN)
    yield d
    d.close()


@pytest.fixture
def double(server):
    server.script.clear()
    server.requests.clear()
    server.posted.clear()
    return server


def post(**kw) -> Post:
    values = dict(title="社群运营的十个问题", body="我们聊了 **社群** 的增长。\n\n第二段 [链接](https://x.example/a)。",
                  url=URL, brand=dict(BRAND), issue_number=12, theme="增长", format="article")
    values.update(kw)
    return Post(**values)


def channel(double, **kw) -> Weibo:
    return Weibo({"access_token": TOKEN, "base_url": double.url, "timeout": kw.pop("timeout", 2), **kw})


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("weibo") is ADAPTER


@pytest.mark.parametrize("fmt", ["article", "image", "video", "audio", "event"])
def test_render_every_format(fmt):
    extra = {"start": "2030-03-05T11:30:00+00:00", "end": "2030-03-05T13:00:00+00:00", "place": "杭州 云栖小镇",
             "duration_seconds": 754}
    p = post(format=fmt, extra=extra, timezone="Asia/Shanghai", images=["https://news.example.cn/media/a.png"] * 3)
    msg = Weibo({"access_token": TOKEN}).render(p)
    text = msg.payload["status"]
    assert msg.preview == text
    assert msg.length == count(text, "weibo") <= 140
    assert text.startswith("周二产品夜话\n【第12期 · 增长】")
    assert "社群运营的十个问题" in text
    assert text.endswith("\n" + URL)
    assert "**" not in text  # Markdown became plain text
    assert "#产品#" not in text and "#" not in text  # share.json refuses #topics#
    assert msg.payload["pic"] == "https://news.example.cn/media/a.png"
    if fmt == "event":
        assert "2030-03-05 19:30 – 2030-03-05 21:00" in text and "杭州 云栖小镇" in text
    if fmt in ("video", "audio"):
        assert "12:34" in text
    if fmt == "image":
        assert "3图" in text


def test_render_english_issue_label_and_no_brand():
    msg = Weibo({"access_token": TOKEN}).render(post(locale="en", brand={}, theme="", images=[]))
    assert msg.payload["status"].startswith("【No. 12】社群运营的十个问题")
    assert "pic" not in msg.payload


def test_long_text_is_cut_but_the_link_stays():
    body = "。".join(f"第{i}句，讲社群里真实发生的故事" for i in range(60))
    msg = Weibo({"access_token": TOKEN}).render(post(body=body))
    text = msg.payload["status"]
    assert count(text, "weibo") <= 140
    assert count(text, "weibo") >= 120  # not cut more than needed
    assert text.endswith("…\n" + URL)


def test_ascii_counts_half():
    body = "a" * 400
    text = Weibo({"access_token": TOKEN}).render(post(body=body, brand={})).payload["status"]
    assert count(text, "weibo") <= 140
    assert text.count("a") > 140  # ASCII letters count as half a character each
    assert text.endswith(URL)


def test_render_needs_the_link():
    with pytest.raises(ValueError):
        Weibo({"access_token": TOKEN}).render(post(url=""))


def test_send_success(double):
    ch = channel(double)
    receipt = ch.send(ch.render(post(images=[])), idempotency_key="k1")
    assert receipt.remote_id == double.posted[0]["idstr"]
    assert receipt.url == f"https://weibo.com/1904178193/{receipt.remote_id}"
    rec = double.requests[-1]
    assert rec.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    fields, files = parse_form(rec)
    assert fields["access_token"] == TOKEN and fields["status"].endswith(URL) and not files
    assert TOKEN not in repr(receipt.raw)


def test_send_with_picture_from_disk(double, tmp_path):
    path = tmp_path / "cover.png"
    Image.new("RGB", (40, 30), "red").save(path)
    ch = channel(double)
    p = post(images=["https://news.example.cn/media/cover.png"], image_files=[str(path)])
    ch.send(ch.render(p), idempotency_key="k1")
    fields, files = parse_form(double.requests[-1])
    assert files["pic"][1] == "image/png" and files["pic"][2] == path.read_bytes()
    assert "original_pic" in double.posted[0]


def test_picture_too_large_is_permanent_before_posting(double, tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG" + b"0" * (5 * 1024 * 1024))
    ch = channel(double)
    p = post(images=["https://news.example.cn/media/huge.png"], image_files=[str(path)])
    with pytest.raises(Permanent) as err:
        ch.send(ch.render(p), idempotency_key="k1")
    assert err.value.code == "image_too_large"
    assert double.requests == []


def test_same_text_twice_is_refused(double):
    ch = channel(double)
    msg = ch.render(post())
    ch.send(msg, idempotency_key="k1")
    with pytest.raises(Permanent) as err:
        ch.send(msg, idempotency_key="k2")
    assert err.value.code == "20019" and "same text twice" in err.value.message


def test_wrong_token_is_permanent_and_secret_free(double):
    ch = Weibo({"access_token": "2.00wrong-token-XYZ", "base_url": double.url, "timeout": 2})
    with pytest.raises(Permanent) as err:
        ch.send(ch.render(post()), idempotency_key="k1")
    assert err.value.code == "21332"
    assert "2.00wrong-token-XYZ" not in str(err.value)


def test_link_outside_the_safe_domain(double):
    ch = channel(double)
    with pytest.raises(Permanent) as err:
        ch.send(ch.render(post(url="https://elsewhere.example.org/archive/12")), idempotency_key="k1")
    assert err.value.code == "10017" and "safe domain" in err.value.message


def test_too_long_for_weibo_is_permanent(double):
    ch = channel(double)
    msg = ch.render(post())
    msg.payload["status"] = "长" * 141 + URL  # as if counted wrongly
    with pytest.raises(Permanent) as err:
        ch.send(msg, idempotency_key="k1")
    assert err.value.code == "20012"


@pytest.mark.parametrize("answer,kind,code", [
    (weibo_error(20016, "Out of limit!"), RateLimited, "20016"),
    (weibo_error(10023, "User requests out of rate limit!", 403), RateLimited, "10023"),
    (weibo_error(10024, "User requests for (statuses/share) out of rate limit!", 403), RateLimited, "10024"),
    (weibo_error(20017, "Repeated weibo text!"), Permanent, "20017"),
    (weibo_error(21327, "expired_token", 403), Permanent, "21327"),
    (weibo_error(21314, "Token used!", 403), Permanent, "21314"),
    (weibo_error(21315, "Token expired!", 403), Permanent, "21315"),
    (weibo_error(21316, "Token revoked!", 403), Permanent, "21316"),
    (weibo_error(21317, "Token rejected!", 403), Permanent, "21317"),
    (weibo_error(10001, "System error", 500), Retryable, "10001"),
    (weibo_error(10009, "Too many pending tasks, system is busy", 503), Retryable, "10009"),
    (weibo_error(10009, "Too many pending tasks, system is busy", 400), Retryable, "10009"),
    (Answer(502, "<html>Bad Gateway</html>"), Retryable, "502"),
    (Answer(200, "<html>not json</html>"), OutcomeUnknown, "unexpected_answer"),
    (Answer(404, "<html>nothing here</html>"), Permanent, "404"),
])
def test_answers_are_classified(double, answer, kind, code):
    double.answer(answer)
    ch = channel(double)
    with pytest.raises(kind) as err:
        ch.send(ch.render(post()), idempotency_key="k1")
    assert type(err.value) is kind
    assert err.value.code == code
    assert TOKEN not in str(err.value)
    if kind is RateLimited:
        assert err.value.retry_after == 3600


def test_error_code_as_string_and_echoed_token(double):
    double.answer(Answer(400, {"request": "/2/statuses/share.json", "error_code": "21332",
                               "error": f"invalid_access_token {TOKEN}"}))
    ch = channel(double)
    with pytest.raises(Permanent) as err:
        ch.send(ch.render(post()), idempotency_key="k1")
    assert err.value.code == "21332" and TOKEN not in str(err.value)


def test_no_answer_is_outcome_unknown(double):
    double.answer(Answer(200, b"", delay=1.0))
    ch = channel(double, timeout=0.3)
    with pytest.raises(OutcomeUnknown):
        ch.send(ch.render(post()), idempotency_key="k1")


def test_connection_refused_is_retryable():
    d = WeiboDouble(TOKEN)
    url = d.url
    d.close()
    ch = Weibo({"access_token": TOKEN, "base_url": url, "timeout": 1})
    with pytest.raises(Retryable):
        ch.send(ch.render(post()), idempotency_key="k1")
