"""Log in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from ..extensions import db, limiter, login_manager
from ..i18n import LOCALES
from ..models import User, utcnow
from ..security import check_password

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see this page.")


class LoginForm(FlaskForm):
    # Length first: the e-mail check is slow on absurdly long input.
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254), Email()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    remember = BooleanField(_l("Keep me logged in"))


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login is a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("items.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == form.email.data.strip().lower()))
        if check_password(user, form.password.data) and user.active:
            login_user(user, remember=form.remember.data)
            user.last_login_at = utcnow()
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash(_l("Wrong e-mail or password."), "error")
    return render_template("web/login.html", form=form), 200 if request.method == "GET" or form.errors else 401


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash(_l("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/language/<code>")
def language(code: str):
    if code in LOCALES:
        session["locale"] = code
    return redirect(_safe_next(request.form.get("next") or request.referrer and urlsplit(request.referrer).path))
