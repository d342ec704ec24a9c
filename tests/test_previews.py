"""Per-channel previews: rendered by each adapter, counted the way each channel counts, secrets kept out."""

from __future__ import annotations

import html
import json

import pytest

from channels import registry
from channels.base import Channel as Adapter
from channels.base import Field, Limits, Message, Post
from publisher import dispatch
from publisher.extensions import db
from publisher.models import Column, Role, User
from publisher.posts import build_post
from publisher.previews import MASK, count, previews
from publisher.security import create_token
from tests.conftest import login
from tests.factories import later, make_channel, make_item

PARTY = "第12期 🎉"
# By hand: 第 and 期 are 3 UTF-8 bytes each, 1 and 2 and the space 1 each, 🎉 (U+1F389, outside the
# BMP) 4 bytes and 2 UTF-16 code units. So 6 characters, 3+1+1+3+1+4 = 13 bytes, 5+2 = 7 UTF-16 units.
TOPIC = "第12期：社群运营"  # 9 characters: 7 Chinese ones (3 bytes each) and two digits, 23 bytes
TOKEN = "tok-0123456789-secret"


class BytesLimited(Adapter):
    """Counts UTF-8 bytes up to 20, like a group bot; echoes its token, as a careless adapter might."""

    type = "preview-test"
    label = "Byte bot"
    fields = (Field("token", "Token", secret=True),)
    limits = Limits(max_length=20, length_unit="bytes", markup="markdown")

    def render(self, post: Post) -> Message:
        if post.format == "image":
            raise ValueError("images are not supported")
        text = f"{post.title}{post.body}"
        return Message(payload={"msgtype": "markdown", "text": text, "token": self.config["token"]}, preview=text)


@pytest.fixture
def byte_bot(app):
    registry.available()["preview-test"] = BytesLimited
    yield make_channel("preview-test", name="Community group", token=TOKEN)
    registry.available().pop("preview-test")


@pytest.fixture
def editor(client, users):
    login(client, "editor@example.com")
    return client


def test_count_per_unit():
    assert [count(PARTY, unit) for unit in ("characters", "bytes", "utf16")] == [6, 13, 7]
    assert [count(TOPIC, unit) for unit in ("characters", "bytes", "utf16")] == [9, 23, 9]
    assert [count("abc", unit) for unit in ("characters", "bytes", "utf16")] == [3, 3, 3]
    with pytest.raises(ValueError):
        count("abc", "words")


def test_over_the_limit_in_bytes_is_warned(editor, byte_bot):
    fits = make_item(title=PARTY, body="")
    too_long = make_item(title=TOPIC, body="")
    for item in (fits, too_long):
        dispatch.schedule(item, [byte_bot], later(3600))
    db.session.commit()

    [p] = previews(too_long)
    assert (p.length, p.unit, p.max_length, p.over_limit, p.over_by, p.markup) == (23, "bytes", 20, True, 3, "markdown")
    page = editor.get(f"/items/{too_long.id}/previews").get_data(as_text=True)
    assert "23 / 20 bytes" in page
    assert "Too long by 3 bytes: Byte bot will refuse it." in page

    page = editor.get(f"/items/{fits.id}/previews").get_data(as_text=True)
    assert "13 / 20 bytes" in page and "Too long" not in page
    [data] = editor.get(f"/api/items/{fits.id}/previews").get_json()["data"]
    assert (data["length"], data["over_limit"], data["over_by"]) == (13, False, 0)


def test_webhook_and_feed_previews_are_what_render_produces(editor):
    hook = make_channel("webhook", name="Partner hook", url="http://127.0.0.1:9/hook", secret="hook-signing-secret")
    feed = make_channel("feed", name="News feed", title="News")
    item = make_item(title=TOPIC, body="**欢迎** <b>everyone</b>")
    dispatch.schedule(item, [hook, feed], later(3600))
    db.session.commit()

    got = {p.channel_id: p for p in previews(item)}
    assert set(got) == {hook.id, feed.id}
    api = {p["channel_id"]: p for p in editor.get(f"/api/items/{item.id}/previews").get_json()["data"]}
    for channel in (hook, feed):
        message = registry.get(channel.type)(channel.config).render(build_post(item))
        payload = json.dumps(message.payload, ensure_ascii=False, indent=2)
        assert (got[channel.id].payload, got[channel.id].text, got[channel.id].error) == (payload, message.preview, "")
        assert got[channel.id].length == len(message.preview)  # both count characters
        assert (api[channel.id]["payload"], api[channel.id]["text"]) == (payload, message.preview)
    assert json.loads(got[hook.id].payload)["title"] == TOPIC

    page = editor.get(f"/items/{item.id}/previews").get_data(as_text=True)
    assert "Partner hook" in page and "Signed webhook" in page and "News feed" in page
    assert "&lt;b&gt;everyone&lt;/b&gt;" in page and "<b>everyone" not in page  # shown, never run
    assert page.count('<article class="card preview"') == 2


def test_secrets_never_appear(editor, byte_bot):
    hook = make_channel("webhook", url="http://127.0.0.1:9/hook", secret="hook-signing-secret")
    item = make_item(title="Hi", body="")
    dispatch.schedule(item, [hook, byte_bot], later(3600))
    db.session.commit()

    page = editor.get(f"/items/{item.id}/previews").get_data(as_text=True)
    body = editor.get(f"/api/items/{item.id}/previews").get_data(as_text=True)
    for shown in (page, body):
        assert "hook-signing-secret" not in shown and TOKEN not in shown
        assert "config" not in shown
    assert MASK in page  # the adapter put its token in the payload: masked
    assert {p.channel_type for p in previews(item)} == {"webhook", "preview-test"}


def test_a_render_error_is_shown_in_words(editor, byte_bot):
    hook = make_channel("webhook", url="http://127.0.0.1:9/hook", secret="hook-signing-secret")
    gone = make_channel("no-such-type", name="Old plugin")
    item = make_item(title="Photos", format="image")
    dispatch.schedule(item, [byte_bot, hook, gone], later(3600))
    db.session.commit()

    response = editor.get(f"/items/{item.id}/previews")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Byte bot cannot format this item: images are not supported." in page
    assert "(no-such-type) is not installed on this server" in page
    assert '"title": "Photos"' in html.unescape(page)  # the webhook still previews next to them
    data = {p["channel_type"]: p for p in editor.get(f"/api/items/{item.id}/previews").get_json()["data"]}
    assert data["preview-test"]["error"].startswith("Byte bot cannot format this item")
    assert data["webhook"]["error"] == ""


def test_which_channels_are_previewed(app, editor):
    first = make_channel("feed", name="A feed")
    second = make_channel("feed", name="B feed")
    off = make_channel("feed", name="C feed")
    off.enabled = False
    column = Column(name="Weekly", slug="weekly", default_channels=[second])
    db.session.add(column)
    db.session.commit()

    loose = make_item(title="Loose")
    assert [p.channel_name for p in previews(loose)] == ["A feed", "B feed"]  # every enabled channel
    in_column = make_item(title="In a column", column=column)
    assert [p.channel_name for p in previews(in_column)] == ["B feed"]  # the column's defaults
    dispatch.schedule(in_column, [off, first], later(3600))
    db.session.commit()
    assert [p.channel_name for p in previews(in_column)] == ["C feed", "A feed"]  # its deliveries
    assert "This channel is switched off" in editor.get(f"/items/{in_column.id}/previews").get_data(as_text=True)

    empty = Column(name="Empty", slug="empty")
    db.session.delete(first)
    db.session.delete(second)
    db.session.delete(off)
    db.session.add(empty)
    db.session.commit()
    lonely = make_item(title="Nowhere", column=empty)
    assert "There is no channel to preview" in editor.get(f"/items/{lonely.id}/previews").get_data(as_text=True)


def test_login_is_required(client, users):
    item = make_item()
    assert client.get(f"/items/{item.id}/previews").status_code == 302
    response = client.get(f"/api/items/{item.id}/previews")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"

    _row, token = create_token(db.session.get(User, users["reviewer"].id), "previews")
    db.session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/items/{item.id}/previews", headers=bearer).status_code == 200
    assert client.get(f"/api/items/{item.id}/previews", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.get("/api/items/999999/previews", headers=bearer)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"

    login(client, "reviewer@example.com")
    assert users["reviewer"].role == Role.REVIEWER
    assert client.get(f"/items/{item.id}/previews").status_code == 200
    assert client.get("/items/999999/previews").status_code == 404
