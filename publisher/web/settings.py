"""Settings (admins only): the organisation (name, timezone, language) and the user accounts."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import available_timezones

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField

from ..extensions import db
from ..i18n import organisation
from ..models import Role, User
from ..security import create_user, role_required

bp = Blueprint("settings", __name__, url_prefix="/settings")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
ROLE_NAMES = {Role.ADMIN: _l("Admin"), Role.EDITOR: _l("Editor"), Role.REVIEWER: _l("Reviewer")}


@bp.before_request
@role_required(Role.ADMIN)
def _admins_only() -> None:
    """Every page here is for admins."""


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    return sorted(available_timezones())


def _role_choices() -> list[SelectChoice]:
    return [SelectChoice(Role.ADMIN, _l("Admin: everything, including users, channels and settings")),
            SelectChoice(Role.EDITOR, _l("Editor: writes and schedules items")),
            SelectChoice(Role.REVIEWER, _l("Reviewer: reads everything, changes nothing"))]


class OrganisationForm(FlaskForm):
    name = StringField(_l("Organisation name"))
    timezone = StringField(_l("Timezone"))
    locale = SelectField(_l("Default language"), validate_choice=False,
                         choices=[SelectChoice("zh_CN", "简体中文"), SelectChoice("en", "English")])
    require_approval = BooleanField(_l("Require approval: nothing goes out before a reviewer approves it"))


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"))
    name = StringField(_l("Name"))
    role = SelectField(_l("Role"), validate_choice=False, default=Role.EDITOR)
    password = PasswordField(_l("Initial password"))


def _errors(form: FlaskForm) -> dict[str, str]:
    return {name: messages[0] for name, messages in form.errors.items() if messages}


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _is_last_admin(user: User) -> bool:
    """True when `user` is the only active admin. Other admins' rows are locked until the commit."""
    others = db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.active.is_(True), User.id != user.id).with_for_update()
    ).all()
    return user.role == Role.ADMIN and user.active and not others


@bp.route("", methods=["GET", "POST"])
def index():
    org = organisation()
    form = OrganisationForm(obj=org)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        zone = (form.timezone.data or "").strip()
        if not name:
            errors["name"] = _("A name is required.")
        elif len(name) > 200:
            errors["name"] = _("The name is longer than 200 characters.")
        if zone not in set(timezones()):
            errors["timezone"] = _("Unknown timezone. Choose one from the list, e.g. Asia/Shanghai.")
        if form.locale.data not in ("zh_CN", "en"):
            errors["locale"] = _("Choose a language from the list.")
        if not errors:
            org.name, org.timezone, org.locale = name, zone, form.locale.data
            org.require_approval = bool(form.require_approval.data)
            db.session.commit()
            flash(_("Settings saved."), "success")
            return redirect(url_for("settings.index"))
    errors = {**_errors(form), **errors}
    users = db.session.scalars(select(User).order_by(User.active.desc(), User.email)).all()
    return render_template("web/settings/index.html", form=form, errors=errors, users=users,
                           timezones=timezones(), role_names=ROLE_NAMES), 400 if errors else 200


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    form = UserForm()
    form.role.choices = _role_choices()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower()
        if not EMAIL.match(email):
            errors["email"] = _("Enter an e-mail address like name@example.com.")
        elif db.session.scalar(select(User.id).where(User.email == email)) is not None:
            errors["email"] = _("There is already a user with this e-mail.")
        if form.role.data not in set(Role):
            errors["role"] = _("Choose a role from the list.")
        if len(form.password.data or "") < MIN_PASSWORD:
            errors["password"] = _("The password needs at least %(count)d characters.", count=MIN_PASSWORD)
        if not errors:
            user = create_user(email, form.password.data, Role(form.role.data), (form.name.data or "").strip())
            db.session.commit()
            flash(_("User %(email)s is created. Give them their password in person or by phone, not by e-mail.",
                    email=user.email), "success")
            return redirect(url_for("settings.index"))
    errors = {**_errors(form), **errors}
    return render_template("web/settings/user_new.html", form=form, errors=errors), 400 if errors else 200


@bp.post("/users/<int:user_id>/role")
def change_role(user_id: int):
    user = _user(user_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    role = request.form.get("role", "")
    if role not in set(Role):
        flash(_("Choose a role from the list."), "error")
    elif role != Role.ADMIN and _is_last_admin(user):
        db.session.rollback()
        flash(_("%(email)s is the last admin. Make someone else an admin first.", email=user.email), "error")
    else:
        user.role = role
        db.session.commit()
        flash(_("%(email)s is now: %(role)s.", email=user.email, role=ROLE_NAMES[Role(role)]), "success")
    return redirect(url_for("settings.index"))


@bp.post("/users/<int:user_id>/active")
def toggle_active(user_id: int):
    user = _user(user_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if user.active and user.id == current_user.id:
        flash(_("You cannot deactivate yourself. Ask another admin."), "error")
    elif user.active and _is_last_admin(user):
        db.session.rollback()
        flash(_("%(email)s is the last admin. Make someone else an admin first.", email=user.email), "error")
    else:
        user.active = not user.active
        db.session.commit()
        if user.active:
            flash(_("%(email)s can log in again.", email=user.email), "success")
        else:
            flash(_("%(email)s is deactivated and can no longer log in.", email=user.email), "info")
    return redirect(url_for("settings.index"))
