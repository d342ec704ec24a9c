from __future__ import annotations

import socket

import pytest

from channels import registry
from channels.base import Post
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.slack import ADAPTER, HEADER_MAX, SECTION_MAX, TEXT_MAX, Slack
from channels.text import count
from tests.adapters.slack_double import PATH, SlackDouble, error, ok
from tests.doubles import Answer

SECRET_PART = PATH.rsplit("/", 1)[1]


def make_post(**overrides) -> Post:
    values = dict(
        title="Spring <meetup> & friends",
        body="We meet **again** at [the park](https://example.org/park?a=1&b=2).\n\n- bring food\n- bring *friends*",
        url="https://publisher.example/archive/7",
        format="article",
        images=[],
        column="Weekly",
        brand={"intro": "Hello from the team", "signoff": "See you — the team", "hashtags": ["community", "spring"],
               "color": "#3b82f6", "cover": "https://publisher.example/media/cover.png"},
        issue_number=12,
        theme="Growth",
        locale="zh_CN",
        timezone="Asia/Shanghai",
    )
    values.update(overrides)
    return Post(**values)


@pytest.fixture(scope="module")
def _server():
    d = SlackDouble()
    yield d
    d.close()


@pytest.fixture
def slack(_server):
    """One server for the module (starting and stopping one takes half a second), fresh for each test."""
    server = _server
    server.script.clear()
    server.requests.clear()
    return server


def adapter(double, **config) -> Slack:
    return Slack({"webhook_url": f"https://hooks.slack.com{PATH}", "base_url": double.url, "timeout": 2, **config})


def sections(message) -> list[str]:
    return [b["text"]["text"] for b in message.payload["blocks"] if b["type"] == "section"]


# --- render ----------------------------------------------------------------------------------------

def test_article_has_header_brand_issue_theme_and_escaped_mrkdwn():
    message = Slack({"webhook_url": "x"}).render(make_post())
    blocks = message.payload["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Spring <meetup> & friends",
                                                    "emoji": True}}
    assert blocks[1] == {"type": "image", "image_url": "https://publisher.example/media/cover.png",
                         "alt_text": "Spring <meetup> & friends"}
    text = "\n\n".join(sections(message))
    assert text.startswith("Hello from the team\n\n*第12期 · Growth*\n\n")
    assert "We meet *again* at <https://example.org/park?a=1&b=2|the park>." in text
    assert "• bring food\n• bring _friends_" in text
    assert "<https://publisher.example/archive/7|阅读全文>" in text
    assert "#community #spring" in text and text.endswith("_See you — the team_")
    assert message.payload["text"] == "第12期 Spring &lt;meetup&gt; &amp; friends"
    assert message.preview.startswith("Spring <meetup> & friends\n\n")
    assert message.length == count(message.preview, "characters") == len(message.preview)


def test_reserved_characters_in_plain_text_are_escaped():
    post = make_post(body="a < b && c > d\n\n`x<y`\n\n```\nif a < b:\n```", brand={"intro": "R&D <team>"})
    text = "\n\n".join(sections(Slack({"webhook_url": "x"}).render(post)))
    assert "a &lt; b &amp;&amp; c &gt; d" in text
    assert "`x&lt;y`" in text and "```\nif a &lt; b:\n```" in text
    assert text.startswith("R&amp;D &lt;team&gt;")
    assert "<team>" not in text and "a < b" not in text


def test_english_locale_uses_english_labels_and_issue_number():
    text = "\n\n".join(sections(Slack({"webhook_url": "x"}).render(make_post(locale="en", theme=""))))
    assert "*No. 12*" in text and "Read the full post" in text and "阅读全文" not in text


def test_image_format_shows_every_image():
    images = [f"https://publisher.example/media/{i}.png" for i in range(3)]
    message = Slack({"webhook_url": "x"}).render(make_post(format="image", images=images))
    assert [b["image_url"] for b in message.payload["blocks"] if b["type"] == "image"] == images


def test_video_and_audio_link_the_media_with_duration():
    video = Slack({"webhook_url": "x"}).render(make_post(
        format="video", extra={"file_url": "https://publisher.example/media/v.mp4", "link_url": "",
                               "duration_seconds": 3725}))
    assert "*▶ 观看:* <https://publisher.example/media/v.mp4|Spring &lt;meetup&gt; &amp; friends> (1:02:05)" \
        in "\n\n".join(sections(video))
    audio = Slack({"webhook_url": "x"}).render(make_post(
        format="audio", locale="en", extra={"file_url": None, "link_url": "https://pod.example/ep1",
                                            "duration_seconds": 95}))
    assert "*🎧 Listen:* <https://pod.example/ep1|" in "\n\n".join(sections(audio))
    assert "(1:35)" in audio.preview


def test_event_times_are_shown_in_the_organisation_zone():
    post = make_post(format="event", extra={"start": "2026-05-01T02:00:00+00:00", "end": "2026-05-01T04:30:00+00:00",
                                            "place": "Hall <B>", "online_url": "https://meet.example/x"})
    text = "\n\n".join(sections(Slack({"webhook_url": "x"}).render(post)))
    assert "*时间:* 2026-05-01 10:00 – 2026-05-01 12:30 (Asia/Shanghai)" in text
    assert "*地点:* Hall &lt;B&gt;" in text
    assert "*线上:* <https://meet.example/x|https://meet.example/x>" in text


def test_a_long_body_is_cut_with_the_link_kept_and_sections_within_limits():
    paragraphs = [f"Paragraph {i} " + "word " * 150 for i in range(40)]  # ~31,000 characters
    message = Slack({"webhook_url": "x"}).render(make_post(body="\n\n".join(paragraphs)))
    assert message.length <= TEXT_MAX
    assert message.length > TEXT_MAX - SECTION_MAX  # cut close to the limit, not everything dropped
    texts = sections(message)
    assert all(0 < len(t) <= SECTION_MAX for t in texts)
    assert len(message.payload["blocks"]) <= 50
    joined = "\n\n".join(texts)
    assert "…" in joined and "Paragraph 0" in joined and "Paragraph 39" not in joined
    assert "<https://publisher.example/archive/7|阅读全文>" in joined
    assert joined.endswith("_See you — the team_")


def test_one_huge_paragraph_is_split_into_sections_without_breaking_links():
    body = " ".join(f"[link {i}](https://example.org/{i})" for i in range(400))  # one paragraph, ~12k chars
    message = Slack({"webhook_url": "x"}).render(make_post(body=body))
    for text in sections(message):
        assert len(text) <= SECTION_MAX
        assert text.count("<") == text.count(">")  # no <url|text> split across sections


def test_long_title_is_cut_to_the_header_limit():
    message = Slack({"webhook_url": "x"}).render(make_post(title="标题" * 100))
    header = message.payload["blocks"][0]["text"]["text"]
    assert len(header) <= HEADER_MAX and header.endswith("…")


# --- send ------------------------------------------------------------------------------------------

def test_send_posts_json_to_the_webhook_and_reads_ok(slack):
    slack.answer(ok())
    channel = adapter(slack)
    message = channel.render(make_post())
    receipt = channel.send(message, idempotency_key="k1")
    assert receipt.raw == "ok" and receipt.remote_id is None
    rec = slack.requests[-1]
    assert rec.path == PATH
    assert rec.headers["Content-Type"].startswith("application/json")
    assert rec.json() == message.payload


def test_default_base_url_keeps_the_webhook_origin():
    channel = Slack({"webhook_url": "https://hooks.slack.com/services/A/B/C", "base_url": "https://hooks.slack.com"})
    assert channel.url() == "https://hooks.slack.com/services/A/B/C"


@pytest.mark.parametrize("status,code", [(400, "invalid_payload"), (400, "no_text"), (403, "action_prohibited"),
                                         (403, "invalid_token"), (404, "channel_not_found"), (404, "no_service"),
                                         (410, "channel_is_archived")])
def test_documented_errors_are_permanent_with_slacks_code(slack, status, code):
    slack.answer(error(status, code))
    channel = adapter(slack)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == code
    assert SECRET_PART not in str(info.value)


def test_the_double_refuses_what_slack_refuses(slack):
    channel = adapter(slack, webhook_url="https://hooks.slack.com/services/T0/B0/wrong")
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "no_service"
    good = adapter(slack)
    with pytest.raises(Permanent) as info:
        good.send(type(good.render(make_post()))(payload={"blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": "x" * 3001}}]}), idempotency_key="k")
    assert info.value.code == "invalid_blocks"


def test_rate_limited_with_retry_after(slack):
    slack.answer(error(429, "rate_limited", **{"Retry-After": "7"}))
    channel = adapter(slack)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.retry_after == 7.0 and info.value.code == "rate_limited"


def test_server_error_is_retryable(slack):
    slack.answer(error(500, "rollup_error"))
    channel = adapter(slack)
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "rollup_error"
    assert SECRET_PART not in str(info.value)


def test_a_200_that_is_not_ok_is_not_taken_for_success(slack):
    slack.answer(Answer(200, "<html>proxy login</html>"))
    channel = adapter(slack)
    with pytest.raises(OutcomeUnknown):
        channel.send(channel.render(make_post()), idempotency_key="k")


def test_no_answer_is_outcome_unknown(slack):
    slack.answer(Answer(200, "ok", delay=1.0))
    channel = adapter(slack, timeout=0.3)
    with pytest.raises(OutcomeUnknown) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert SECRET_PART not in str(info.value)


def test_refused_connection_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = Slack({"webhook_url": f"http://127.0.0.1:{port}{PATH}", "base_url": f"http://127.0.0.1:{port}",
                     "timeout": 1})
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert SECRET_PART not in str(info.value)


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("slack") is ADAPTER is Slack
    assert Slack.secret_fields() == {"webhook_url"}
    assert Slack.limits.rate_limit == "1/second" and not Slack.idempotent


def test_a_code_block_split_between_sections_is_closed_and_reopened():
    message = Slack({"webhook_url": "x"}).render(make_post(body="```\n" + "x = 1 < 2\n" * 600 + "```"))
    code_sections = [t for t in sections(message) if "x = 1" in t]
    assert len(code_sections) >= 2
    for text in code_sections:
        assert len(text) <= SECTION_MAX and text.count("```") == 2
        assert text.startswith("```")
    assert all(text.endswith("```") for text in code_sections[:-1])  # the last one goes on with the footer
