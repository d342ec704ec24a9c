"""The media library: uploads are judged by their content, stored under random names outside static/,
deduplicated, served with the detected type, and kept while an item uses them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from publisher import media
from publisher.extensions import db
from publisher.models import Item, Media
from tests.factories import make_item
from tests.test_web_items import logged_in


def png(size=(30, 20), color="red", mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def jpeg(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def store(data: bytes, name: str = "file.bin") -> Media:
    row, _created = media.store(io.BytesIO(data), name, None)
    db.session.commit()
    return row


# Minimal headers of each accepted audio and video type: what the detection reads, and nothing more.
HEADERS = {
    "id3.mp3": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 64, "audio", "audio/mpeg", ".mp3"),
    "frames.mp3": (b"\xff\xfb\x90\x64" + b"\x00" * 64, "audio", "audio/mpeg", ".mp3"),
    "song.m4a": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + b"\x00" * 64, "audio", "audio/mp4", ".m4a"),
    "song.ogg": (b"OggS\x00\x02" + b"\x00" * 64, "audio", "audio/ogg", ".ogg"),
    "song.wav": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64, "audio", "audio/wav", ".wav"),
    "clip.mp4": (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00" + b"\x00" * 64, "video", "video/mp4", ".mp4"),
    "clip.mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00" + b"\x00" * 64, "video", "video/quicktime", ".mov"),
    "clip.webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x00" * 64, "video", "video/webm", ".webm"),
}


@pytest.mark.parametrize("name", list(HEADERS))
def test_audio_and_video_are_recognised_by_their_first_bytes(app, name):
    data, kind, content_type, ext = HEADERS[name]
    row = store(data, "renamed.png")  # the name says image; the content decides
    assert (row.kind, row.content_type) == (kind, content_type)
    assert row.stored_name.endswith(ext) and row.width is None


def test_a_real_png_is_accepted_with_its_dimensions_stored_outside_static(app):
    row = store(png((30, 20)), "photo.jpg")
    assert (row.kind, row.content_type, row.width, row.height) == ("image", "image/png", 30, 20)
    path = media.path_of(row)
    assert path.read_bytes() == png((30, 20))
    assert path.parent == Path(app.instance_path) / "media"
    assert Path(app.static_folder) not in path.parents
    assert "photo" not in row.stored_name and len(row.stored_name) >= 24 and row.stored_name.endswith(".png")
    assert row.original_name == "photo.jpg"
    other = store(jpeg(), "../../etc/x.jpg")
    assert other.content_type == "image/jpeg" and other.original_name == "x.jpg"
    assert other.stored_name != row.stored_name


@pytest.mark.parametrize("data", [
    b"just some text, honestly\n" * 20,  # a text file named .png
    jpeg()[:400],  # a truncated JPEG: the header is fine, the pixels are missing
    png()[:-20],  # a PNG without its end
    b"GIF89a" + b"\x00" * 10,
    b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
])
def test_what_pillow_cannot_read_is_refused(app, data):
    with pytest.raises(media.Rejected, match="not an image we can read"):
        store(data, "picture.png")
    assert db.session.scalar(select(func.count(Media.id))) == 0
    assert not [p for p in (Path(app.instance_path) / "media").glob(".upload-*")]


def test_too_many_pixels_are_refused_before_decoding(app):
    big = png((8000, 6000), color=1, mode="1")  # 48 megapixels, a few KB
    assert len(big) < 100_000
    with pytest.raises(media.Rejected, match="48 megapixels; the limit is 40"):
        store(big, "poster.png")


def test_size_limits_by_kind(app, monkeypatch):
    monkeypatch.setitem(media.MAX_SIZE, "video", 1000)
    monkeypatch.setitem(media.MAX_SIZE, "image", 100)
    with pytest.raises(media.Rejected, match="the limit for video is"):
        store(HEADERS["clip.mp4"][0] + b"\x00" * 2000)
    with pytest.raises(media.Rejected, match="the limit for images is"):
        store(jpeg())
    store(HEADERS["song.wav"][0] + b"\x00" * 2000)  # audio has its own limit
    monkeypatch.undo()
    assert str(media._too_large("video", 120 * media.MB)) == "Too large: 120 MB, the limit for video is 500 MB"


def test_a_second_upload_of_the_same_file_returns_the_existing_row(app):
    first = store(png(), "a.png")
    again, created = media.store(io.BytesIO(png()), "b.png", None)
    assert again.id == first.id and created is False
    assert db.session.scalar(select(func.count(Media.id))) == 1


def test_files_are_served_with_their_detected_type_and_nosniff(app, client):
    image = store(png(), "photo.png")
    sound = store(HEADERS["song.ogg"][0], "voice.ogg")
    resp = client.get(f"/media/{image.stored_name}")  # public: no login
    assert resp.status_code == 200 and resp.data == png()
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"] == "inline"
    resp = client.get(f"/media/{sound.stored_name}")
    assert resp.headers["Content-Type"] == "audio/ogg" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert client.get("/media/nope.png").status_code == 404


def test_the_library_page_uploads_several_files_and_explains_refusals(app, users):
    editor = logged_in(app, "editor")
    resp = editor.post("/media", data={"files": [(io.BytesIO(png()), "one.png"),
                                                 (io.BytesIO(HEADERS["clip.webm"][0]), "two.webm")]},
                       content_type="multipart/form-data")
    assert resp.status_code == 302
    page = editor.get("/media").text
    assert "one.png" in page and "30×20" in page and "video/webm" in page and "Uploaded by editor" in page
    resp = editor.post("/media", data={"files": [(io.BytesIO(b"hello"), "fake.png")]},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    assert "fake.png: This file is not an image we can read (JPEG, PNG, GIF or WebP)" in resp.text
    reviewer = logged_in(app, "reviewer")
    assert reviewer.get("/media").status_code == 200
    assert reviewer.post("/media", data={}).status_code == 403


def test_delete_is_refused_while_an_item_uses_the_file(app, users):
    cover = store(png(), "cover.png")
    path = media.path_of(cover)
    item = make_item(cover_id=cover.id)
    editor = logged_in(app, "editor")
    resp = editor.post(f"/media/{cover.id}/delete", follow_redirects=True)
    assert "This file is used by “第12期：社群运营”" in resp.text and path.exists()
    item.cover_id = None
    db.session.commit()
    gallery = make_item(title="Gallery")
    media.attach(gallery, [cover.id])
    db.session.commit()
    with pytest.raises(media.Rejected, match="Gallery"):
        media.remove(cover)
    db.session.rollback()
    media.attach(db.session.get(Item, gallery.id), [])
    db.session.commit()
    assert editor.post(f"/media/{cover.id}/delete").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Media.id))) == 0 and not path.exists()


def test_the_upload_limit_is_raised_on_upload_routes_only(make_app, users):
    # Note: Flask's own default is no limit; an app-wide 1 MB makes the difference visible.
    small = make_app(MAX_CONTENT_LENGTH=1024 * 1024)
    item = make_item()
    editor = logged_in(small, "editor")
    big = HEADERS["clip.mp4"][0] + b"\x00" * (2 * 1024 * 1024)
    resp = editor.post("/media", data={"files": [(io.BytesIO(big), "long.mp4")]}, content_type="multipart/form-data")
    assert resp.status_code == 302
    assert db.session.scalar(select(func.count(Media.id))) == 1
    resp = editor.post(f"/items/{item.id}/schedule", data={"when": "now", "due_at": "x" * (2 * 1024 * 1024)})
    assert resp.status_code == 413


def test_api_media(app, client, users):
    editor = logged_in(app, "editor")
    resp = editor.post("/api/media", data={"file": (io.BytesIO(png()), "api.png")}, content_type="multipart/form-data")
    assert resp.status_code == 201 and resp.json["kind"] == "image" and resp.json["width"] == 30
    assert resp.json["url"].endswith(f"/media/{db.session.get(Media, resp.json['id']).stored_name}")
    again = editor.post("/api/media", data={"file": (io.BytesIO(png()), "x.png")}, content_type="multipart/form-data")
    assert again.status_code == 200 and again.json["id"] == resp.json["id"]
    bad = editor.post("/api/media", data={"file": (io.BytesIO(b"nope"), "x.png")}, content_type="multipart/form-data")
    assert bad.status_code == 400 and "not an image we can read" in bad.json["error"]["fields"]["file"]
    assert [m["id"] for m in editor.get("/api/media?kind=image").json["data"]] == [resp.json["id"]]
    make_item(cover_id=resp.json["id"])
    assert editor.delete(f"/api/media/{resp.json['id']}").status_code == 409


def exercise_the_api(api, editor: dict, reviewer: dict) -> None:
    """Every /api/media operation's success through tests/test_openapi.py's Recorder (schemas checked)."""
    row = api.call("post", "/api/media", 201, editor, data={"file": (io.BytesIO(png((7, 5))), "openapi.png")},
                   content_type="multipart/form-data").get_json()
    api.call("post", "/api/media", 200, editor, data={"file": (io.BytesIO(png((7, 5))), "again.png")},
             content_type="multipart/form-data")
    api.call("get", "/api/media", 200, reviewer)
    api.call("get", "/api/media/{media_id}", 200, reviewer, media_id=row["id"])
    api.call("delete", "/api/media/{media_id}", 204, editor, media_id=row["id"])
