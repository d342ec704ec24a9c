"""The media library: uploads checked by their content, stored under random names outside static/.

The file name a browser sends says nothing about what a file is, so it is never trusted: images
must open and decode in Pillow (JPEG, PNG, GIF, WebP), audio and video are recognised by their
first bytes. The content type we serve is the one we detected. The random stored name is the
capability: published items and feeds link to it, so serving needs no login.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from flask import current_app
from flask_babel import gettext as _
from PIL import Image
from sqlalchemy import delete, func, insert, or_, select

from .extensions import db
from .models import Column, Item, Media, MediaKind, User, item_media

MB = 1024 * 1024
MAX_SIZE = {MediaKind.IMAGE: 20 * MB, MediaKind.AUDIO: 100 * MB, MediaKind.VIDEO: 500 * MB}
MAX_UPLOAD = max(MAX_SIZE.values())
MAX_PIXELS = 40_000_000
IMAGE_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "GIF": ("image/gif", ".gif"),
               "WEBP": ("image/webp", ".webp")}
CHUNK = 1024 * 1024


class Rejected(Exception):
    """The upload is not something we accept; the message says why, in the user's words."""


@dataclass
class Detected:
    kind: str
    content_type: str
    ext: str
    width: int | None = None
    height: int | None = None


def media_dir() -> Path:
    path = Path(current_app.instance_path) / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_of(media: Media) -> Path:
    return media_dir() / media.stored_name


def _too_large(kind: str, size: int) -> Rejected:
    size_mb = f"{size / MB:.0f}"
    limit = MAX_SIZE[kind] // MB
    if kind == MediaKind.IMAGE:
        return Rejected(_("Too large: %(size)s MB, the limit for images is %(limit)d MB", size=size_mb, limit=limit))
    if kind == MediaKind.AUDIO:
        return Rejected(_("Too large: %(size)s MB, the limit for audio is %(limit)d MB", size=size_mb, limit=limit))
    return Rejected(_("Too large: %(size)s MB, the limit for video is %(limit)d MB", size=size_mb, limit=limit))


def sniff(head: bytes) -> Detected | None:
    """Audio and video by their magic bytes (the first 16 are enough)."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return Detected(MediaKind.AUDIO, "audio/mp4", ".m4a")
        if brand == b"qt  ":
            return Detected(MediaKind.VIDEO, "video/quicktime", ".mov")
        return Detected(MediaKind.VIDEO, "video/mp4", ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Detected(MediaKind.VIDEO, "video/webm", ".webm")
    if head.startswith(b"OggS"):
        return Detected(MediaKind.AUDIO, "audio/ogg", ".ogg")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Detected(MediaKind.AUDIO, "audio/wav", ".wav")
    # ID3 tag, or an MPEG audio frame: 11 sync bits, then a version and a layer that are not "reserved".
    if head.startswith(b"ID3"):
        return Detected(MediaKind.AUDIO, "audio/mpeg", ".mp3")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 3 and (head[1] >> 3) & 3 != 1:
        return Detected(MediaKind.AUDIO, "audio/mpeg", ".mp3")
    return None


def check_image(path: Path) -> Detected:
    """Open, verify and decode the image; refuse what Pillow cannot read and decompression bombs."""
    not_readable = Rejected(_("This file is not an image we can read (JPEG, PNG, GIF or WebP)"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt, (width, height) = img.format, img.size
                if fmt not in IMAGE_TYPES:
                    raise not_readable
                if width * height > MAX_PIXELS:
                    raise Rejected(_("The image has %(mp).0f megapixels; the limit is %(limit)d.",
                                     mp=width * height / 1e6, limit=MAX_PIXELS // 1_000_000))
                img.verify()  # the structure and checksums
            with Image.open(path) as img:
                img.load()  # the pixels themselves: a truncated file fails here
    except Rejected:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            EOFError):
        raise not_readable from None
    content_type, ext = IMAGE_TYPES[fmt]
    return Detected(MediaKind.IMAGE, content_type, ext, width, height)


def store(stream: IO[bytes], original_name: str, user: User | None) -> tuple[Media, bool]:
    """Check and keep one upload: (row, created). The same bytes uploaded again give the existing
    row and False. The caller commits."""
    folder = media_dir()
    tmp = folder / f".upload-{secrets.token_hex(8)}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise _too_large(MediaKind.VIDEO, size)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Rejected(_("The file is empty."))
        with open(tmp, "rb") as f:
            head = f.read(16)
        found = sniff(head) or check_image(tmp)
        if size > MAX_SIZE[found.kind]:
            raise _too_large(found.kind, size)
        sha = digest.hexdigest()
        existing = db.session.scalar(select(Media).where(Media.sha256 == sha).order_by(Media.id).limit(1))
        if existing is not None:
            return existing, False
        stored_name = secrets.token_urlsafe(18) + found.ext
        os.replace(tmp, folder / stored_name)
    finally:
        tmp.unlink(missing_ok=True)
    name = os.path.basename((original_name or "").replace("\\", "/"))[:255]  # never a path, only a label
    media = Media(kind=found.kind, original_name=name, stored_name=stored_name,
                  content_type=found.content_type, size=size, sha256=sha, width=found.width, height=found.height,
                  uploaded_by_id=user.id if user else None)
    db.session.add(media)
    db.session.flush()
    return media, True


def users_of(media: Media) -> list[Item]:
    """The items that show this file (as cover, file or image)."""
    in_gallery = select(item_media.c.item_id).where(item_media.c.media_id == media.id)
    return list(db.session.scalars(
        select(Item).where(or_(Item.cover_id == media.id, Item.file_id == media.id, Item.id.in_(in_gallery)))
        .order_by(Item.id)
    ))


def remove(media: Media) -> None:
    """Delete a file nobody uses; refused (Rejected) while an item or a column shows it. The caller commits."""
    items = users_of(media)
    if items:
        raise Rejected(_("This file is used by %(items)s; remove it there first.",
                         items=", ".join(f"“{i.title}”" for i in items[:5])))
    columns = db.session.scalar(select(func.count(Column.id)).where(Column.cover_id == media.id))
    if columns:
        raise Rejected(_("This file is the cover of a column; choose another cover there first."))
    path = path_of(media)
    db.session.delete(media)
    db.session.flush()
    path.unlink(missing_ok=True)


# --- items and their media -------------------------------------------------------------------------

def check_ids(data: dict, errors: dict[str, str]) -> None:
    """Check the media references of an item's data by their kind; messages go into `errors`."""
    wanted = {"cover_id": MediaKind.IMAGE, "file_id": None}
    for name, kind in wanted.items():
        value = data.get(name)
        if value in (None, ""):
            continue
        media = db.session.get(Media, int(value)) if str(value).isdigit() else None
        if media is None:
            errors[name] = _("No such file in the media library.")
        elif kind and media.kind != kind:
            errors[name] = _("The cover must be an image.")
        elif name == "file_id" and data.get("format") == MediaKind.AUDIO and media.kind != MediaKind.AUDIO:
            errors[name] = _("This file is not an audio file.")
        elif name == "file_id" and data.get("format") == MediaKind.VIDEO and media.kind != MediaKind.VIDEO:
            errors[name] = _("This file is not a video file.")
    ids = data.get("media_ids") or []
    if ids:
        found = {m.id: m for m in db.session.scalars(select(Media).where(Media.id.in_([int(i) for i in ids])))}
        if any(int(i) not in found for i in ids):
            errors["media_ids"] = _("No such file in the media library.")
        elif any(m.kind != MediaKind.IMAGE for m in found.values()):
            errors["media_ids"] = _("Only images can be shown in an image post.")


def attach(item: Item, media_ids: list[int]) -> None:
    """Set the item's images, in this order. The caller commits."""
    db.session.flush()
    db.session.execute(delete(item_media).where(item_media.c.item_id == item.id))
    ordered = list(dict.fromkeys(int(i) for i in media_ids))
    if ordered:
        db.session.execute(insert(item_media), [
            {"item_id": item.id, "media_id": mid, "position": pos} for pos, mid in enumerate(ordered)
        ])
    db.session.expire(item, ["media"])
