from __future__ import annotations

import socket

import pytest

from channels import registry
from channels.base import Post
from channels.discord import ADAPTER, DESCRIPTION_MAX, EMBEDS_TOTAL_MAX, Discord, escape
from channels.errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from channels.text import count
from tests.adapters.discord_double import GUILD_ID, TOKEN, WEBHOOK_ID, DiscordDouble, invalid_form, rate_limited
from tests.doubles import Answer

WEBHOOK = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{TOKEN}"


def make_post(**overrides) -> Post:
    values = dict(
        title="Spring *meetup* & friends",
        body="We meet **again** at [the park](https://example.org/park_a?b=1).\n\n- bring food\n- bring _friends_",
        url="https://publisher.example/archive/7",
        format="article",
        images=["https://publisher.example/media/1.png"],
        column="Weekly",
        brand={"intro": "Hello from the team", "signoff": "See you", "hashtags": ["community", "spring"],
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
    d = DiscordDouble()
    yield d
    d.close()


@pytest.fixture
def discord(_server):
    """One server for the module (starting and stopping one takes half a second), fresh for each test."""
    server = _server
    server.script.clear()
    server.requests.clear()
    return server


def adapter(double, webhook: str = WEBHOOK, **config) -> Discord:
    return Discord({"webhook_url": webhook, "base_url": double.url, "timeout": 2, **config})


def embed_total(payload) -> int:
    total = 0
    for e in payload["embeds"]:
        total += len(e.get("title", "")) + len(e.get("description", "")) + len(e.get("footer", {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields", []))
    return total


# --- render ----------------------------------------------------------------------------------------

def test_article_is_one_embed_with_brand_colour_cover_issue_and_discord_markdown():
    message = Discord({"webhook_url": WEBHOOK}).render(make_post())
    assert message.payload["allowed_mentions"] == {"parse": []}
    [embed] = message.payload["embeds"]
    assert embed["title"] == "Spring *meetup* & friends"
    assert embed["url"] == "https://publisher.example/archive/7"
    assert embed["color"] == 0x3B82F6
    assert embed["image"] == {"url": "https://publisher.example/media/1.png"}
    assert embed["footer"] == {"text": "Weekly"}
    d = embed["description"]
    assert d.startswith("Hello from the team\n\n**第12期 · Growth**\n\n")
    assert "We meet **again** at [the park](https://example.org/park_a?b=1)." in d
    assert "• bring food\n• bring *friends*" in d
    assert "[阅读全文](https://publisher.example/archive/7)" in d
    assert "#community #spring" in d and d.endswith("*See you*")
    assert message.length == count(message.preview, "characters")
    assert message.preview.startswith("Spring *meetup* & friends\n\n")


def test_plain_text_markdown_characters_are_escaped_but_urls_kept():
    assert escape("a*b_c~d`e|f [g] <@123> https://x.example/a_b*c") == \
        "a\\*b\\_c\\~d\\`e\\|f \\[g\\] \\<@123\\> https://x.example/a_b*c"
    assert escape("# not a heading\n- not a list\n1. not numbered\n> not a quote") == \
        "\\# not a heading\n\\- not a list\n1\\. not numbered\n\\> not a quote"
    post = make_post(body="2 * 3 = 6 and a_b_c\n\n# Title", brand={"intro": "**not bold**", "signoff": "x_y"})
    d = Discord({"webhook_url": WEBHOOK}).render(post).payload["embeds"][0]["description"]
    assert d.startswith("\\*\\*not bold\\*\\*")
    assert "2 \\* 3 = 6 and a\\_b\\_c" in d and "**Title**" in d and d.endswith("*x\\_y*")


def test_english_locale():
    d = Discord({"webhook_url": WEBHOOK}).render(make_post(locale="en", theme="")).payload["embeds"][0]
    assert "**No. 12**" in d["description"] and "[Read the full post](" in d["description"]


def test_image_post_is_a_gallery_of_up_to_four():
    images = [f"https://publisher.example/media/{i}.png" for i in range(6)]
    embeds = Discord({"webhook_url": WEBHOOK}).render(make_post(format="image", images=images)).payload["embeds"]
    assert [e["image"]["url"] for e in embeds] == images[:4]
    assert {e["url"] for e in embeds} == {"https://publisher.example/archive/7"}


def test_event_time_and_place_are_fields_in_local_time():
    post = make_post(format="event", extra={"start": "2026-05-01T02:00:00+00:00", "end": "2026-05-01T04:30:00+00:00",
                                            "place": "Hall *B*", "online_url": "https://meet.example/x"})
    fields = Discord({"webhook_url": WEBHOOK}).render(post).payload["embeds"][0]["fields"]
    assert fields == [
        {"name": "时间", "value": "2026-05-01 10:00 – 2026-05-01 12:30 (Asia/Shanghai)", "inline": True},
        {"name": "地点", "value": "Hall \\*B\\*", "inline": True},
        {"name": "线上", "value": "https://meet.example/x", "inline": False},
    ]


def test_video_and_audio_fields():
    video = Discord({"webhook_url": WEBHOOK}).render(make_post(
        format="video", locale="en", extra={"file_url": "https://publisher.example/media/v.mp4", "link_url": "",
                                            "duration_seconds": 3725}))
    assert video.payload["embeds"][0]["fields"] == [
        {"name": "▶ Watch", "value": "[Spring \\*meetup\\* & friends](https://publisher.example/media/v.mp4)",
         "inline": False},
        {"name": "Duration", "value": "1:02:05", "inline": True}]
    audio = Discord({"webhook_url": WEBHOOK}).render(make_post(
        format="audio", extra={"file_url": None, "link_url": "https://pod.example/ep(1)", "duration_seconds": None}))
    assert audio.payload["embeds"][0]["fields"] == [
        {"name": "🎧 收听", "value": "[Spring \\*meetup\\* & friends](https://pod.example/ep%281%29)", "inline": False}]


def test_a_long_body_is_cut_within_the_description_and_total_limits():
    body = "\n\n".join(f"Paragraph {i} " + "词" * 400 for i in range(30))
    message = Discord({"webhook_url": WEBHOOK}).render(make_post(body=body, format="event", extra={
        "start": "2026-05-01T02:00:00+00:00", "end": None, "place": "P" * 1500, "online_url": ""}))
    embed = message.payload["embeds"][0]
    assert len(embed["description"]) <= DESCRIPTION_MAX
    assert embed_total(message.payload) <= EMBEDS_TOTAL_MAX
    assert message.length <= EMBEDS_TOTAL_MAX
    assert "…" in embed["description"] and "Paragraph 0" in embed["description"]
    assert "Paragraph 29" not in embed["description"]
    assert "[阅读全文](https://publisher.example/archive/7)" in embed["description"]
    assert len(embed["fields"][1]["value"]) <= 1024


# --- send ------------------------------------------------------------------------------------------

def test_send_waits_for_the_message_and_keeps_other_query_parameters(discord):
    channel = adapter(discord, webhook=f"{WEBHOOK}?thread_id=42&wait=false")
    message = channel.render(make_post())
    receipt = channel.send(message, idempotency_key="k")
    rec = discord.requests[-1]
    assert rec.query == {"thread_id": "42", "wait": "true"}
    assert rec.json() == message.payload
    assert receipt.remote_id and receipt.remote_id.isdigit()
    assert receipt.url is None  # without a guild id no correct message link can be built
    assert TOKEN not in repr(receipt.raw)


def test_message_url_when_the_answer_names_the_guild():
    d = DiscordDouble(with_guild=True)
    try:
        receipt = adapter(d).send(adapter(d).render(make_post()), idempotency_key="k")
        assert receipt.url == f"https://discord.com/channels/{GUILD_ID}/{receipt.raw['channel_id']}/{receipt.remote_id}"
    finally:
        d.close()


@pytest.mark.parametrize("webhook,code", [(f"https://discord.com/api/webhooks/{WEBHOOK_ID}/wrong", "50027"),
                                          (f"https://discord.com/api/webhooks/1/{TOKEN}", "10015")])
def test_bad_credentials_are_permanent(discord, webhook, code):
    channel = adapter(discord, webhook=webhook)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == code
    assert TOKEN not in str(info.value)


def test_invalid_form_body_is_permanent(discord):
    channel = adapter(discord)
    message = channel.render(make_post())
    message.payload["embeds"][0]["description"] = "x" * 4097  # what Discord would refuse
    with pytest.raises(Permanent) as info:
        channel.send(message, idempotency_key="k")
    assert (info.value.code, info.value.message) == ("50035", "Invalid Form Body")


def test_missing_permissions_is_permanent(discord):
    discord.answer(Answer(403, {"message": "Missing Permissions", "code": 50013}))
    channel = adapter(discord)
    with pytest.raises(Permanent) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.code == "50013"


def test_rate_limited_uses_the_bodys_float_retry_after(discord):
    discord.answer(rate_limited(retry_after=1.25, header="2"))
    channel = adapter(discord)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.retry_after == 1.25
    assert TOKEN not in str(info.value)


def test_rate_limited_falls_back_to_the_header(discord):
    discord.answer(Answer(429, "<html>cloudflare</html>", {"Retry-After": "30"}))
    channel = adapter(discord)
    with pytest.raises(RateLimited) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert info.value.retry_after == 30.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(discord, status):
    discord.answer(Answer(status, {"message": "Internal Server Error", "code": 0}))
    channel = adapter(discord)
    with pytest.raises(Retryable):
        channel.send(channel.render(make_post()), idempotency_key="k")


def test_no_answer_is_outcome_unknown(discord):
    discord.answer(Answer(200, {}, delay=1.0))
    channel = adapter(discord, timeout=0.3)
    with pytest.raises(OutcomeUnknown) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert TOKEN not in str(info.value)


def test_refused_connection_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = Discord({"webhook_url": WEBHOOK, "base_url": f"http://127.0.0.1:{port}", "timeout": 1})
    with pytest.raises(Retryable) as info:
        channel.send(channel.render(make_post()), idempotency_key="k")
    assert TOKEN not in str(info.value)


def test_default_base_url_keeps_the_webhook_origin():
    channel = Discord({"webhook_url": "https://ptb.discord.com/api/webhooks/1/t", "base_url": "https://discord.com"})
    assert channel.url() == "https://ptb.discord.com/api/webhooks/1/t?wait=true"


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("discord") is ADAPTER is Discord
    assert Discord.secret_fields() == {"webhook_url"} and not Discord.idempotent
    assert invalid_form().status == 400
