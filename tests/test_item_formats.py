"""Items of every format: what each needs, event times in the organisation's timezone, images in
order, and what channels receive (images, brand kit, issue number, theme, format fields)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from publisher import dispatch
from publisher.extensions import db
from publisher.items import Invalid, validate_item
from publisher.models import Column, Item
from publisher.posts import build_post
from tests.factories import make_item, webhook_channel
from tests.test_media import HEADERS, png, store
from tests.test_web_items import fresh, logged_in, settle


def _form(**data) -> dict:
    return {"title": "An item", "body": "text", "origin": "pgc", "when": "now", **data}


@pytest.mark.parametrize("fmt, data, field", [
    ("image", {}, "media_ids"),
    ("video", {}, "file_id"),
    ("audio", {"link_url": "not a link"}, "link_url"),
    ("audio", {"duration": "three minutes", "link_url": "https://example.com/a"}, "duration"),
    ("event", {"event_place": "Hall"}, "event_start"),
    ("event", {"event_start": datetime(2030, 1, 1, tzinfo=UTC)}, "event_place"),
    ("event", {"event_start": datetime(2030, 1, 1, 10, tzinfo=UTC), "event_end": datetime(2030, 1, 1, 9, tzinfo=UTC),
               "event_url": "https://meet.example.com/x"}, "event_end"),
])
def test_each_format_has_its_required_fields(app, fmt, data, field):
    with pytest.raises(Invalid) as refused:
        validate_item({"title": "x", "format": fmt, **data})
    assert field in refused.value.errors


def test_the_kind_of_a_file_must_fit(app):
    image = store(png(), "cover.png")
    sound = store(HEADERS["song.ogg"][0], "a.ogg")
    with pytest.raises(Invalid) as refused:
        validate_item({"title": "x", "format": "video", "file_id": sound.id})
    assert refused.value.errors == {"file_id": "This file is not a video file."}
    with pytest.raises(Invalid) as refused:
        validate_item({"title": "x", "format": "article", "cover_id": sound.id})
    assert refused.value.errors == {"cover_id": "The cover must be an image."}
    with pytest.raises(Invalid) as refused:
        validate_item({"title": "x", "format": "image", "media_ids": [image.id, sound.id]})
    assert "media_ids" in refused.value.errors
    values = validate_item({"title": "x", "format": "audio", "file_id": sound.id, "duration": "1:02:03"})
    assert values["duration_seconds"] == 3723


def test_an_event_from_the_form_in_the_organisations_timezone(app, users):
    editor = logged_in(app, "editor")
    resp = editor.post("/items/new", data=_form(format="event", event_start="2030-06-01T19:30",
                                               event_end="2030-06-01T21:00", event_url="https://meet.example.com/x"))
    assert resp.status_code == 302
    item = db.session.scalar(db.select(Item))
    # Asia/Shanghai is UTC+8.
    assert item.event_start == datetime(2030, 6, 1, 11, 30, tzinfo=UTC)
    assert item.event_end == datetime(2030, 6, 1, 13, 0, tzinfo=UTC)
    page = editor.get(f"/items/{item.id}").text
    assert "2030-06-01 19:30" in page and "https://meet.example.com/x" in page
    edit = editor.get(f"/items/{item.id}/edit").text
    assert 'value="2030-06-01T19:30"' in edit
    resp = editor.post("/items/new", data=_form(format="event", event_start="2030-06-01T19:30"))
    assert resp.status_code == 400 and "Give a place, an online link, or both." in resp.text


def test_an_image_post_with_uploads_and_library_images_in_order(app, users):
    first = store(png((10, 10), "blue"), "first.png")
    second = store(png((12, 10), "green"), "second.png")
    editor = logged_in(app, "editor")
    resp = editor.post("/items/new", data=_form(
        format="image", **{f"position-{second.id}": "1", f"position-{first.id}": "2"},
        image_uploads=[(io.BytesIO(png((14, 10), "black")), "third.png")],
    ), content_type="multipart/form-data")
    assert resp.status_code == 302, resp.text
    item = db.session.scalar(db.select(Item))
    assert [m.width for m in item.media] == [12, 10, 14]
    resp = editor.post("/items/new", data=_form(format="image", image_uploads=[(io.BytesIO(b"text"), "x.png")]),
                       content_type="multipart/form-data")
    assert resp.status_code == 400 and "x.png: This file is not an image we can read" in resp.text


def test_video_with_an_uploaded_file_or_a_link(app, users):
    editor = logged_in(app, "editor")
    resp = editor.post("/items/new", data=_form(format="video", duration="3:25",
                                               file_upload=(io.BytesIO(HEADERS["clip.webm"][0]), "clip.webm")),
                       content_type="multipart/form-data")
    assert resp.status_code == 302
    item = db.session.scalar(db.select(Item))
    assert item.file.content_type == "video/webm" and item.duration_seconds == 205
    assert editor.post("/items/new", data=_form(format="audio", link_url="https://example.com/ep1")).status_code == 302
    resp = editor.post("/items/new", data=_form(format="audio"))
    assert resp.status_code == 400 and "Upload a file or give a link." in resp.text


def test_the_channel_receives_images_brand_issue_theme_and_format_fields(app, users, drain, webhook_double):
    column = Column(name="Weekly", slug="weekly", intro="Hello!", signoff="See you", hashtags="books #reading",
                    color="#ff0000", first_issue=12)
    db.session.add(column)
    cover = store(png(), "cover.png")
    item = make_item(column=column, theme="Spring", cover_id=cover.id, format="event",
                     event_start=datetime(2030, 1, 1, 12, tzinfo=UTC), event_place="Hall 1")
    post = build_post(item)
    assert post.images == [f"http://127.0.0.1:5000/media/{cover.stored_name}"]
    assert post.issue_number is None  # no planned time: no prediction
    (delivery,) = dispatch.schedule(item, [webhook_channel(webhook_double)], datetime.now(UTC))
    db.session.commit()
    assert build_post(fresh(Item, item.id)).issue_number == 12  # predicted from its planned time
    assert settle(drain, delivery.id).status == "sent"
    payload = webhook_double.requests[0].json()
    assert payload["issue_number"] == 12 and payload["theme"] == "Spring"
    assert payload["brand"] == {"intro": "Hello!", "signoff": "See you", "hashtags": ["books", "reading"],
                                "color": "#ff0000", "cover": None}
    assert payload["extra"] == {"start": "2030-01-01T12:00:00+00:00", "end": None, "place": "Hall 1",
                                "online_url": ""}
    assert payload["images"] == [f"http://127.0.0.1:5000/media/{cover.stored_name}"]
    assert fresh(Item, item.id).issue_number == 12


def test_the_api_takes_and_gives_the_format_fields(app, client, users):
    editor = logged_in(app, "editor")
    image = store(png(), "a.png")
    resp = editor.post("/api/items", json={"title": "Gallery", "format": "image", "media_ids": [image.id],
                                           "planned_at": "2030-02-01T20:00:00+08:00", "theme": "Winter"})
    assert resp.status_code == 201
    body = resp.json
    assert body["media_ids"] == [image.id] and body["planned_at"] == "2030-02-01T12:00:00+00:00"
    assert body["theme"] == "Winter"
    resp = editor.patch(f"/api/items/{body['id']}", json={"version": body["version"], "media_ids": []})
    assert resp.status_code == 400 and "media_ids" in resp.json["error"]["fields"]
    resp = editor.patch(f"/api/items/{body['id']}", json={"version": body["version"],
                                                         "planned_at": "2030-02-02T20:00:00+08:00"})
    assert resp.status_code == 200 and resp.json["planned_at"] == "2030-02-02T12:00:00+00:00"
    history = editor.get(f"/api/items/{body['id']}/history").json["data"]
    assert history[-1]["changes"] == {"planned_at": ["2030-02-01T12:00:00+00:00", "2030-02-02T12:00:00+00:00"]}
