"""API tokens: each user lists, creates and revokes their own. A new token is shown once, never again."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ..extensions import db
from ..models import ApiToken, utcnow
from ..security import create_token

bp = Blueprint("tokens", __name__, url_prefix="/tokens")


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)],
                       description=_l("What the token is for, e.g. \"CMS import\"."))


@bp.before_request
@login_required
def _browser_only() -> None:
    # A token must not mint more tokens: revoking a leaked one would not shut its holder out.
    if "Authorization" in request.headers:
        abort(403)


def _own_tokens() -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id.desc())
    return list(db.session.scalars(query))


@bp.route("/", methods=["GET", "POST"])
def index():
    form = TokenForm()
    if form.validate_on_submit():
        row, token = create_token(current_user._get_current_object(), form.name.data.strip())
        db.session.commit()
        # Rendered here, not after a redirect: the token must not travel through the session cookie.
        response = make_response(render_template("web/tokens/created.html", row=row, token=token))
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("web/tokens/index.html", form=form, tokens=_own_tokens()), 400 if form.errors else 200


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int):
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != current_user.id:
        abort(404)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
        flash(_("The token \"%(name)s\" is revoked; programs that use it are refused from now on.", name=row.name),
              "info")
    return redirect(url_for("tokens.index"))
