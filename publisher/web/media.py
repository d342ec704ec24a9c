"""The media library: upload (checked by content), browse, delete; and serving the files.

Files are served publicly at /media/<stored name>: the random name is the capability, and
published items and feeds show the images to people who are not logged in.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select

from .. import media
from ..extensions import csrf, db, limiter
from ..models import Media, MediaKind, Role, User
from ..security import role_required

bp = Blueprint("media", __name__)
PER_PAGE = 60
# Public, so limited; a page or a feed shows many images at once, hence more than PUBLIC_RATE_LIMIT.
SERVE_RATE_LIMIT = "600 per minute"


def allow_uploads() -> None:
    """The video limit on this request only; every other request keeps the app's small limit."""
    request.max_content_length = media.MAX_UPLOAD + media.MB


def _library(status: int = 200, errors: list[str] | None = None):
    page = request.args.get("page", 1, type=int)
    files = db.paginate(select(Media).order_by(Media.id.desc()), page=page, per_page=PER_PAGE, error_out=False)
    uploader_ids = {m.uploaded_by_id for m in files if m.uploaded_by_id}
    uploaders = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(uploader_ids)))}
    return render_template("web/media/index.html", files=files, uploaders=uploaders, errors=errors or [],
                           can_write=current_user.can(Role.EDITOR), limits=media.MAX_SIZE, mb=media.MB,
                           kinds=MediaKind, human_size=human_size), status


def human_size(size: int) -> str:
    return f"{size / media.MB:.1f} MB" if size >= media.MB // 10 else f"{max(1, size // 1024)} KB"


@bp.get("/media")
@login_required
def index():
    return _library()


@bp.post("/media")
@csrf.exempt  # the form's own token is checked below, after the larger upload limit is set
@role_required(Role.EDITOR)
def upload():
    allow_uploads()
    if not FlaskForm().validate_on_submit():
        return _library(400, [_("The form expired. Reload the page and try again.")])
    uploads = [f for f in request.files.getlist("files") if f and f.filename]
    if not uploads:
        return _library(400, [_("Choose one or more files to upload.")])
    errors, stored = [], 0
    for upload in uploads:
        try:
            media.store(upload.stream, upload.filename, current_user)
            db.session.commit()
            stored += 1
        except media.Rejected as exc:
            db.session.rollback()
            errors.append(f"{upload.filename}: {exc}")
    if errors:
        return _library(400, errors)
    flash(_("%(count)d file(s) uploaded.", count=stored), "success")
    return redirect(url_for("media.index"))


@bp.post("/media/<int:media_id>/delete")
@role_required(Role.EDITOR)
def delete(media_id: int):
    row = db.session.get(Media, media_id)
    if row is None:
        abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400)
    try:
        media.remove(row)
        db.session.commit()
    except media.Rejected as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(_("Deleted."), "success")
    return redirect(url_for("media.index"))


@bp.get("/media/<stored_name>")
@limiter.limit(SERVE_RATE_LIMIT)
def serve(stored_name: str):
    row = db.session.scalar(select(Media).where(Media.stored_name == stored_name))
    if row is None or not media.path_of(row).is_file():
        abort(404)
    image = row.kind == MediaKind.IMAGE
    response = send_file(media.path_of(row), mimetype=row.content_type, conditional=True, max_age=86400,
                         as_attachment=not image, download_name=row.original_name or row.stored_name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if image:
        response.headers["Content-Disposition"] = "inline"
    return response
