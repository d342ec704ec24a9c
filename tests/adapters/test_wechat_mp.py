"""WeChat Official Account adapter against a double of the WeChat API."""

from __future__ import annotations

import io
import json
import logging
import random
import socket
import traceback
from datetime import datetime

import pytest
from PIL import Image

from channels import registry
from channels.base import Message, Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.text import count
from channels.wechat_mp import (
    ADAPTER,
    CONTENT_MAX,
    QUOTA_ZONE,
    URL_ROOM,
    MemoryTokenCache,
    WechatMP,
    _until_quota_reset,
    fit_image,
)
from tests.adapters.wechat_mp_double import UPLOADIMG_MAX, WechatMPDouble, error, image_kind
from tests.doubles import Answer


@pytest.fixture(scope="module")
def account():
    d = WechatMPDouble()
    yield d
    d.close()


@pytest.fixture
def double(account, monkeypatch):
    """The module's WeChat double, emptied, and a token cache of this test's own."""
    account.reset()
    monkeypatch.setattr(WechatMP, "token_cache", MemoryTokenCache())
    return account


def picture(path, size=(64, 48), fmt="PNG", color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    if path is not None:
        path.write_bytes(out.getvalue())
    return out.getvalue()


def adapter(double, **config) -> WechatMP:
    cfg = {"appid": double.appid, "secret": double.secret, "base_url": double.url, "timeout": 2, "publish_wait": 2}
    cfg.update(config)
    a = WechatMP(cfg)
    a.poll_intervals = (0.02,)
    return a


def post(double, tmp_path, **kw) -> Post:
    """An item with a cover stored on this server's disk and a body picture downloaded from a URL."""
    cover = tmp_path / "cover.png"
    picture(cover, (300, 200))
    double.files["/media/body.jpg"] = (picture(None, (120, 80), "JPEG"), "image/jpeg")
    values = dict(
        title="社区周报：春季活动",
        body=f"# 本周要闻\n\n大家好，**春季活动**开始报名。\n\n![现场]({double.url}/media/body.jpg)\n\n- 报名\n- 签到",
        url="https://publisher.example/archive/42",
        images=["https://publisher.example/media/cover.png"],
        image_files=[str(cover)],
        brand={"intro": "欢迎阅读社区周报", "signoff": "社区编辑部", "hashtags": ["社区", "周报"], "color": "#c0392b"},
        issue_number=12,
        theme="春天",
        author="王小明",
    )
    values.update(kw)
    return Post(**values)


def send(a: WechatMP, p: Post):
    return a.send(a.render(p), idempotency_key="k1")


# --- registry and configuration -----------------------------------------------------------------

def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("wechat_mp") is ADAPTER is WechatMP
    assert WechatMP.idempotent is False
    assert WechatMP.secret_fields() == {"secret"}
    names = {f.name for f in WechatMP.fields}
    assert {"appid", "secret", "author", "need_open_comment", "base_url", "timeout", "publish_wait"} <= names
    assert WechatMP.validate_config({"appid": "wx1"}) == {"secret": "required"}


def test_max_send_seconds_covers_every_step_and_stays_under_the_job_timeout(double):
    a = adapter(double, timeout=10, publish_wait=60)
    # token, uploads and draft (budget), submit, the whole publishing wait and one poll in flight
    assert a.max_send_seconds() >= a._prepare_budget() + 60 + 3 * 10
    assert a.max_send_seconds() < 600  # the worker's job timeout
    assert adapter(double, publish_wait=5000).publish_wait == 300


# --- the whole way -----------------------------------------------------------------------------

def test_publishes_end_to_end_with_polling(double, tmp_path):
    double.publish_statuses(1, 1)  # publishing, publishing, then published
    p = post(double, tmp_path)
    receipt = send(adapter(double, need_open_comment=True, author="编辑部"), p)

    order = [r.path.split("?")[0].removeprefix("/cgi-bin/") for r in double.requests]
    assert order == ["/media/body.jpg", "token", "media/uploadimg", "material/add_material", "draft/add",
                     "freepublish/submit", "freepublish/get", "freepublish/get", "freepublish/get"]
    assert receipt.url.startswith("https://mp.weixin.qq.com/s/")
    publish_id = double.calls("freepublish/submit")[0]
    assert receipt.remote_id == f"article-{receipt.raw['publish_id']}"
    assert receipt.raw["publish_status"] == 0 and publish_id

    (draft,) = [json.loads(r.body) for r in double.calls("draft/add")]
    article = draft["articles"][0]
    assert article["title"] == p.title and article["author"] == "王小明"
    assert article["content_source_url"] == p.url and article["need_open_comment"] == 1
    assert article["thumb_media_id"] in double.materials
    (wx_url,) = double.images
    assert wx_url.replace("&", "&amp;") in article["content"]  # the picture now lives on WeChat
    assert f"{double.url}/media/body.jpg" not in article["content"]
    assert double.images[wx_url] == double.files["/media/body.jpg"][0]
    cover_bytes = (tmp_path / "cover.png").read_bytes()
    assert list(double.materials.values()) == [cover_bytes]  # read from disk, not downloaded
    assert not any("cover.png" in r.path for r in double.requests)
    # only one article went out
    assert len(double.published) == 1 and not double.drafts


def test_token_is_cached_across_sends(double, tmp_path):
    send(adapter(double), post(double, tmp_path))
    send(adapter(double), post(double, tmp_path))  # a new adapter, as each delivery makes one
    assert double.token_calls == 1
    tokens = {r.query["access_token"] for r in double.requests if "access_token" in r.query}
    assert len(tokens) == 1


def test_expired_token_is_refreshed_once_and_the_call_repeated(double, tmp_path):
    send(adapter(double), post(double, tmp_path))
    double.expire_tokens()
    receipt = send(adapter(double), post(double, tmp_path))
    assert receipt.url and double.token_calls == 2
    uploads = double.calls("media/uploadimg")
    assert len(uploads) == 3  # first send, then the refused one, then the repeat
    assert uploads[1].query["access_token"] != uploads[2].query["access_token"]


def test_token_rotated_elsewhere_gives_40001_and_is_refreshed(double, tmp_path):
    send(adapter(double), post(double, tmp_path))
    double.tokens.clear()  # another client fetched a new token: ours is no longer valid
    assert send(adapter(double), post(double, tmp_path)).url
    assert double.token_calls == 2


def test_expired_twice_is_an_error_and_nothing_is_published(double, tmp_path):
    double.expire_on_use = 2
    with pytest.raises(Retryable) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == "42001"
    assert double.token_calls == 2 and not double.calls("freepublish/submit")


def test_a_fresh_token_refused_as_invalid_is_not_refreshed(double, tmp_path):
    double.on("media/uploadimg", error(40001, "invalid credential, access_token is invalid or not latest"))
    with pytest.raises(Retryable) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == "40001" and double.token_calls == 1


@pytest.mark.parametrize("status", [2, 3, 4, 5, 6])
def test_each_failed_publish_status_is_permanent(double, tmp_path, status):
    double.publish_statuses(1, status)
    with pytest.raises(Permanent) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == f"publish_status_{status}"
    assert len(double.calls("freepublish/submit")) == 1
    words = {2: "originality", 3: "failed", 4: "review", 5: "deleted", 6: "blocked"}[status]
    assert words in info.value.message


def test_still_publishing_at_the_deadline_is_outcome_unknown(double, tmp_path):
    double.publish_statuses(*[1] * 1000)
    a = adapter(double, publish_wait=1)
    a.poll_intervals = (0.1,)
    with pytest.raises(OutcomeUnknown) as info:
        send(a, post(double, tmp_path))
    assert info.value.code == "still_publishing"
    polls = double.calls("freepublish/get")
    assert 5 <= len(polls) <= 15
    assert polls[-1].at - polls[0].at < 1.5
    assert len(double.calls("freepublish/submit")) == 1
    assert "publish_id" in info.value.message and "发表记录" in info.value.message


def test_publish_wait_zero_polls_once(double, tmp_path):
    double.publish_statuses(1)
    with pytest.raises(OutcomeUnknown):
        send(adapter(double, publish_wait=0), post(double, tmp_path))
    assert len(double.calls("freepublish/get")) == 1


# --- answers classified --------------------------------------------------------------------------

def test_daily_quota_before_submit_is_rate_limited_until_midnight_beijing(double, tmp_path):
    double.on("draft/add", error(45009, "reach max api daily quota limit"))
    with pytest.raises(RateLimited) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == "45009"
    assert 60 < info.value.retry_after <= 86400 + 60
    assert not double.calls("freepublish/submit")


def test_quota_reset_is_next_midnight_in_beijing():
    late = datetime(2026, 11, 23, 23, 0, tzinfo=QUOTA_ZONE)
    assert _until_quota_reset(late) == 3600 + 60
    early = datetime(2026, 11, 23, 0, 30, tzinfo=QUOTA_ZONE)
    assert _until_quota_reset(early) == 23.5 * 3600 + 60


def test_token_quota_is_rate_limited(double, tmp_path):
    double.on("token", error(45009, "reach max api daily quota limit"))
    with pytest.raises(RateLimited):
        send(adapter(double), post(double, tmp_path))


def test_quota_while_polling_is_outcome_unknown(double, tmp_path):
    double.publish_statuses(1)
    double.on("freepublish/get", Answer(200, {"publish_id": "x", "publish_status": 1}),
              error(45009, "reach max api daily quota limit"))
    with pytest.raises(OutcomeUnknown) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == "45009" and len(double.published) == 1


def test_ip_not_allow_listed_is_permanent_with_advice(double, tmp_path):
    double.ip_allowed = False
    with pytest.raises(Permanent) as info:
        send(adapter(double), post(double, tmp_path))
    assert info.value.code == "40164"
    assert "IP" in info.value.message and "白名单" in info.value.message
    assert "203.0.113.9" in info.value.message  # WeChat names the address to add


@pytest.mark.parametrize("config, code", [({"appid": "wx-wrong"}, "40013"), ({"secret": "f" * 32}, "40125")])
def test_bad_credentials_are_permanent(double, tmp_path, config, code):
    with pytest.raises(Permanent) as info:
        send(adapter(double, **config), post(double, tmp_path))
    assert info.value.code == code and not double.calls("draft/add")


def test_token_endpoint_40001_means_a_wrong_secret(double, tmp_path):
    double.on("token", error(40001, "invalid credential"))
    with pytest.raises(Permanent) as info:
        send(adapter(double), post(double, tmp_path))
    assert "AppSecret" in info.value.message


@pytest.mark.parametrize("endpoint, code, expected", [
    ("draft/add", 40007, Permanent),
    ("draft/add", 48001, Permanent),
    ("draft/add", 45002, Permanent),
    ("draft/add", -1, Retryable),
    ("media/uploadimg", -1, Retryable),
    ("material/add_material", 40007, Permanent),
    ("freepublish/submit", 53503, Permanent),
    ("freepublish/submit", 53504, Permanent),
    ("freepublish/submit", 53505, Permanent),
    ("freepublish/submit", 48001, Permanent),
    ("freepublish/submit", 45009, RateLimited),
    ("freepublish/submit", -1, Retryable),
])
def test_error_codes_in_http_200(double, tmp_path, endpoint, code, expected):
    double.on(endpoint, error(code, "refused"))
    with pytest.raises(expected) as info:
        send(adapter(double), post(double, tmp_path))
    assert type(info.value) is expected and info.value.code == str(code)
    assert not double.published


@pytest.mark.parametrize("endpoint, expected", [
    ("token", Retryable), ("media/uploadimg", Retryable), ("draft/add", Retryable),
    ("freepublish/submit", OutcomeUnknown),  # the submit may have been taken before the gateway failed
])
def test_5xx(double, tmp_path, endpoint, expected):
    double.on(endpoint, Answer(502, "<html>Bad Gateway</html>"))
    with pytest.raises(expected) as info:
        send(adapter(double), post(double, tmp_path))
    assert type(info.value) is expected and info.value.code == "502"


def test_5xx_and_busy_while_polling_keep_polling(double, tmp_path):
    double.on("freepublish/get", Answer(503, "busy"), error(-1, "system error"))
    receipt = send(adapter(double), post(double, tmp_path))
    assert receipt.url and len(double.calls("freepublish/get")) == 3


@pytest.mark.parametrize("endpoint, expected", [
    ("token", Retryable), ("media/uploadimg", Retryable), ("draft/add", Retryable),
    ("freepublish/submit", OutcomeUnknown),
])
def test_never_answering(double, tmp_path, endpoint, expected):
    double.on(endpoint, Answer(200, {"errcode": 0}, delay=1.0))
    with pytest.raises(expected) as info:
        send(adapter(double, timeout=0.3), post(double, tmp_path))
    assert type(info.value) is expected and info.value.code == "timeout"
    assert not double.published or endpoint == "freepublish/submit"


def test_never_answering_status_then_deadline_is_outcome_unknown(double, tmp_path):
    double.on("freepublish/get", *[Answer(200, {"errcode": 0}, delay=1.0)] * 3)
    with pytest.raises(OutcomeUnknown) as info:
        send(adapter(double, timeout=0.3, publish_wait=0), post(double, tmp_path))
    assert "status query failed" in info.value.message


def test_connection_refused_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = WechatMP({"appid": "wx1", "secret": "s" * 32, "base_url": f"http://127.0.0.1:{port}", "timeout": 1,
                  "thumb_media_id": "T"})
    p = Post(title="t", body="b", url="https://x.example/1")
    with pytest.raises(Retryable) as info:
        a.send(a.render(p), idempotency_key="k")
    assert info.value.code == "connection_refused"
    assert "s" * 32 not in "".join(traceback.format_exception(info.value))


def test_not_json_before_and_at_submit(double, tmp_path):
    double.on("draft/add", Answer(200, "<html>hello</html>"))
    with pytest.raises(Retryable):
        send(adapter(double), post(double, tmp_path))
    double.on("freepublish/submit", Answer(200, "<html>hello</html>"))
    with pytest.raises(OutcomeUnknown):
        send(adapter(double), post(double, tmp_path))


# --- secrets --------------------------------------------------------------------------------------

def test_secret_and_token_never_in_errors_receipt_or_logs(double, tmp_path, caplog):
    caplog.set_level(logging.INFO)  # urllib3's DEBUG log prints request URLs: see the docs
    p = post(double, tmp_path)
    errors = []
    scripts = [
        ("token", Answer(200, {"errcode": 40125, "errmsg": f"invalid appsecret {double.secret}"})),
        ("draft/add", Answer(502, "bad gateway")),
        ("freepublish/submit", Answer(200, {}, delay=1.0)),
        ("media/uploadimg", error(40001, "invalid credential")),  # refreshed, then refused again
        ("media/uploadimg", error(40001, "invalid credential")),
        ("freepublish/get", error(48001, "api unauthorized")),
    ]
    for i, (endpoint, answer) in enumerate(scripts):
        double.on(endpoint, answer)
        if scripts[i + 1:i + 2] and scripts[i + 1][0] == endpoint:
            continue
        try:
            send(adapter(double, timeout=0.3), p)
        except Exception as exc:  # noqa: BLE001 - collecting every failure
            errors.append(exc)
    assert len(errors) == len(scripts) - 1
    receipt = send(adapter(double), p)
    tokens = list(double.tokens)
    assert tokens
    text = "\n".join(["".join(traceback.format_exception(e)) + repr(e) + str(e) for e in errors]
                     + [repr(receipt.raw), json.dumps(receipt.raw), caplog.text])
    assert double.secret not in text
    for token in tokens:
        assert token not in text
    assert "***" in str(errors[0])  # WeChat echoing the secret is scrubbed


# --- uploads --------------------------------------------------------------------------------------

def test_big_or_foreign_images_are_made_to_fit(double, tmp_path):
    rng = random.Random(7)
    noisy = Image.frombytes("RGB", (900, 900), bytes(rng.getrandbits(8) for _ in range(900 * 900 * 3)))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    assert len(out.getvalue()) > UPLOADIMG_MAX
    double.files["/media/big.png"] = (out.getvalue(), "image/png")
    webp = io.BytesIO()
    Image.new("RGBA", (40, 40), (0, 0, 255, 128)).save(webp, "WEBP")
    double.files["/media/pic.webp"] = (webp.getvalue(), "image/webp")
    p = post(double, tmp_path, body=f"![a]({double.url}/media/big.png)\n\n![b]({double.url}/media/pic.webp)")
    assert send(adapter(double), p).url
    sizes = [len(d) for d in double.images.values()]
    kinds = {image_kind(d) for d in double.images.values()}
    assert len(sizes) == 2 and max(sizes) < UPLOADIMG_MAX and kinds == {"jpeg"}


def test_fit_image_keeps_small_jpg_and_png_as_they_are(tmp_path):
    png = picture(None)
    assert fit_image(png, "a.png", 10_000) == ("a.png", png, "image/png")
    with pytest.raises(Permanent):
        fit_image(b"not a picture at all", "x.txt", 10_000)


def test_missing_body_image_download_is_permanent(double, tmp_path):
    p = post(double, tmp_path, body=f"![gone]({double.url}/media/gone.jpg)")
    with pytest.raises(Permanent) as info:
        send(adapter(double), p)
    assert info.value.code == "image_download" and not double.calls("draft/add")


def test_brand_cover_is_downloaded_and_used(double, tmp_path):
    double.files["/media/brand.jpg"] = (picture(None, (200, 100), "JPEG", (1, 2, 3)), "image/jpeg")
    p = post(double, tmp_path, brand={"cover": f"{double.url}/media/brand.jpg"})
    assert send(adapter(double), p).url
    assert list(double.materials.values()) == [double.files["/media/brand.jpg"][0]]


def test_no_image_at_all_refuses_unless_a_default_cover_is_configured(double):
    p = Post(title="纯文字", body="只有文字。", url="https://publisher.example/archive/1")
    with pytest.raises(Permanent) as info:
        adapter(double).render(p)
    assert info.value.code == "no_cover" and "cover" in info.value.message
    double.materials["DEFAULT-THUMB"] = b"\xff\xd8\xff"
    receipt = send(adapter(double, thumb_media_id="DEFAULT-THUMB"), p)
    assert receipt.url and not double.calls("material/add_material")
    article = json.loads(double.calls("draft/add")[0].body)["articles"][0]
    assert article["thumb_media_id"] == "DEFAULT-THUMB"


def test_content_grown_past_the_limit_by_image_urls_is_refused_before_the_draft(double, tmp_path):
    a = adapter(double)
    m = a.render(post(double, tmp_path))
    m.payload["article"]["content"] += "<p>" + "字" * (CONTENT_MAX - len(m.payload["article"]["content"])) + "</p>"
    with pytest.raises(Permanent) as info:
        a.send(m, idempotency_key="k")
    assert info.value.code == "too_long" and not double.calls("draft/add")


# --- the token cache ------------------------------------------------------------------------------

def test_memory_cache_forgets_at_expiry():
    cache = MemoryTokenCache()
    cache.set("k", "v", ex=100)
    assert cache.get("k") == "v"
    cache.set("k", "v", ex=0)
    assert cache.get("k") is None
    cache.set("k", "v")
    cache.delete("k")
    assert cache.get("k") is None


class RedisLike:
    """The part of redis.Redis the adapter uses: bytes back, expiry in seconds."""

    def __init__(self):
        self.data, self.ex = {}, {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value, ex=None):
        self.data[key], self.ex[key] = value.encode(), ex

    def delete(self, key):
        self.data.pop(key, None)


def test_a_shared_cache_can_replace_the_memory_one(double, tmp_path, monkeypatch):
    shared = RedisLike()
    monkeypatch.setattr(WechatMP, "token_cache", shared)
    send(adapter(double), post(double, tmp_path))
    (key,) = shared.data
    assert shared.ex[key] == 7200 - 300  # refreshed five minutes before WeChat expires it
    assert double.secret not in key and double.appid not in key
    send(adapter(double), post(double, tmp_path))
    assert double.token_calls == 1


# --- render -----------------------------------------------------------------------------------------

def render(double, p: Post, **config) -> Message:
    return adapter(double, **config).render(p)


def test_render_article_with_brand_issue_theme_and_escaping(double, tmp_path):
    p = post(double, tmp_path, title="<b>标题</b> & 更多", theme="春<天>",
             body="正文 <script>alert(1)</script> [外链](https://example.org/x?a=1&b=2) "
                  "[公众号文章](https://mp.weixin.qq.com/s/abc)\n\n## 小标题\n\n> 引用")
    m = render(double, p)
    a = m.payload["article"]
    c = a["content"]
    assert "<script" not in c and "&lt;script&gt;" in c
    assert "春&lt;天&gt;" in c and "第12期" in c
    assert "欢迎阅读社区周报" in c and "社区编辑部" in c and "#社区 #周报" in c
    assert "#c0392b" in c  # the brand colour in inline styles
    assert '<a style="color:#c0392b" href="https://mp.weixin.qq.com/s/abc">' in c
    assert "example.org" in c and 'href="https://example.org' not in c  # WeChat keeps only its own links
    assert "<h2 style=" in c and "<blockquote style=" in c
    assert a["title"] == "<b>标题</b> & 更多"  # plain text field, WeChat shows it as typed
    assert a["digest"].startswith("第12期 · 春<天>｜正文")
    assert m.payload["cover"] == p.images[0] and m.payload["images"] == []
    assert m.length == count(m.preview, "characters") == len(m.preview)
    assert m.preview.startswith(a["title"] + "\n\n" + a["digest"])
    shown = m.preview.split(a["digest"], 1)[1]
    assert "<script>alert(1)</script>" in shown and "春<天>" in shown  # text as the reader sees it
    assert "<p" not in shown and "style=" not in shown and "&lt;" not in shown


def test_render_english_locale_and_no_column(double, tmp_path):
    p = post(double, tmp_path, locale="en", brand={}, theme="")
    c = render(double, p).payload["article"]["content"]
    assert "No. 12" in c and "第12期" not in c


def test_render_image_format_shows_every_picture(double, tmp_path):
    second = tmp_path / "second.png"
    picture(second)
    p = post(double, tmp_path, format="image", body="说明文字",
             images=["https://publisher.example/media/cover.png", "https://publisher.example/media/second.png"],
             image_files=[str(tmp_path / "cover.png"), str(second)])
    m = render(double, p)
    assert m.payload["images"] == p.images
    assert m.payload["article"]["content"].index("second.png") < m.payload["article"]["content"].index("说明文字")


def test_render_event_in_local_time(double, tmp_path):
    p = post(double, tmp_path, format="event", timezone="Asia/Shanghai",
             extra={"start": "2026-03-01T02:00:00+00:00", "end": "2026-03-01T04:00:00+00:00",
                    "place": "A & B 会议室", "online_url": "https://meet.example/x"})
    c = render(double, p).payload["article"]["content"]
    assert "2026-03-01 10:00 – 2026-03-01 12:00" in c and "A &amp; B 会议室" in c
    assert "https://meet.example/x" in c and "时间" in c


@pytest.mark.parametrize("fmt, word", [("video", "视频"), ("audio", "音频")])
def test_render_video_and_audio(double, tmp_path, fmt, word):
    p = post(double, tmp_path, format=fmt, extra={"link_url": "https://v.example/1", "duration_seconds": 3725})
    c = render(double, p).payload["article"]["content"]
    assert word in c and "1:02:05" in c and "https://v.example/1" in c


def test_render_cuts_fields_to_wechats_limits(double, tmp_path):
    p = post(double, tmp_path, title="标" * 40, author="作" * 20, body="长" * 500)
    a = render(double, p).payload["article"]
    assert len(a["title"]) == 32 and a["title"].endswith("…")
    assert len(a["author"]) == 16 and len(a["digest"]) <= 128


def test_a_long_body_is_cut_at_a_block_with_a_note_and_the_link(double, tmp_path):
    paragraphs = [f"第{i}段。" + "内容" * 300 for i in range(60)]
    p = post(double, tmp_path, body="\n\n".join(paragraphs))
    m = render(double, p)
    c = m.payload["article"]["content"]
    assert len(c) < CONTENT_MAX  # no pictures in the body: no room kept for WeChat's image URLs
    assert len(c) > CONTENT_MAX - 1000  # as much as fits: less than one block (~620 characters) is lost
    assert "阅读原文" in c and p.url in c
    assert c.rstrip().endswith("#社区 #周报</p>")  # the sign-off survives the cut
    assert "第0段" in c and "第59段" not in c
    assert c.count("<p") == c.count("</p>")  # cut between blocks, not inside one
    assert m.meta["content_length"] == len(c)


def test_a_single_huge_paragraph_is_cut_as_text(double, tmp_path):
    p = post(double, tmp_path, body="字&" * 15000, locale="en")
    c = render(double, p).payload["article"]["content"]
    assert len(c) < CONTENT_MAX and "Read more" in c and "…" in c


def test_cut_content_is_accepted_by_wechat(double, tmp_path):
    body = f"![x]({double.url}/media/body.jpg)\n\n" + "\n\n".join("段落" * 400 for _ in range(40))
    p = post(double, tmp_path, body=body)
    rendered = adapter(double).render(p).payload["article"]["content"]
    assert send(adapter(double), p).url
    sent = json.loads(double.calls("draft/add")[0].body)["articles"][0]["content"]
    assert len(double.images) == 1 and len(sent) > len(rendered)  # WeChat's image URL is longer than ours
    assert len(rendered) <= CONTENT_MAX - 1 - URL_ROOM  # room was kept for it
    assert len(sent) < CONTENT_MAX


def test_render_is_pure(double, tmp_path):
    p = post(double, tmp_path)
    before = len(double.requests)
    assert render(double, p).payload == render(double, p).payload
    assert len(double.requests) == before


def test_configuration_is_checked():
    ok = {"appid": "wx1", "secret": "s"}
    assert WechatMP.validate_config(ok) == {}
    assert set(WechatMP.validate_config({**ok, "author": "作" * 17})) == {"author"}
    assert set(WechatMP.validate_config({**ok, "publish_wait": 301})) == {"publish_wait"}
    assert WechatMP.validate_config({**ok, "publish_wait": 0, "author": "作" * 16}) == {}
