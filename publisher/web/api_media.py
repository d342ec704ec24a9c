"""/api/media: the media library over the API (upload as multipart/form-data, field "file")."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import media
from ..extensions import db
from ..items import Invalid
from ..models import Media, MediaKind, Role
from .api_common import ApiError, choice_arg, not_found, paginate, paging_args, require
from .api_json import media_json


def _media(media_id: int) -> Media:
    row = db.session.get(Media, media_id)
    if row is None:
        raise not_found(_("file"))
    return row


def list_media():
    errors: dict[str, str] = {}
    query = select(Media)
    kind = choice_arg("kind", MediaKind, errors)
    if kind is not None:
        query = query.where(Media.kind == kind)
    paging = paging_args(errors)
    if errors:
        raise Invalid(errors)
    rows, meta = paginate(query, Media.id, paging)
    return {"data": [media_json(m) for m in rows], "pagination": meta}


def upload():
    """201 with the new file, or 200 with the existing one when the same bytes were uploaded before."""
    require(Role.EDITOR)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid({"file": _("Send the file as multipart/form-data in the field \"file\".")})
    try:
        row, created = media.store(upload.stream, upload.filename, current_user._get_current_object())
    except media.Rejected as exc:
        raise Invalid({"file": str(exc)}) from None
    db.session.commit()
    return media_json(row), 201 if created else 200, {"Location": url_for("api.media_item", media_id=row.id)}


def get_media(media_id: int):
    return media_json(_media(media_id))


def delete(media_id: int):
    require(Role.EDITOR)
    row = _media(media_id)
    try:
        media.remove(row)
    except media.Rejected as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    db.session.commit()
    return "", 204
