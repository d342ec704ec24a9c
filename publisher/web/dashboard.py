"""The dashboard: the page to open in the morning. Which columns are running dry (their open
slots, each with a Fill button), what is planned for the next seven days, and how many items
wait at each step of the workflow."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import schedule
from ..extensions import db
from ..i18n import organisation
from ..models import Item, ItemStatus, Role, utcnow
from ..security import role_required
from .columns import ics_urls

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

WEEK = timedelta(days=7)
LISTED = 50  # items shown when a status count is opened
STATUSES = {ItemStatus.DRAFT: _l("Drafts"), ItemStatus.IN_REVIEW: _l("In review"),
            ItemStatus.APPROVED: _l("Approved"), ItemStatus.SCHEDULED: _l("Scheduled")}


@bp.get("")
@login_required
def index():
    now = utcnow()
    week = db.session.scalars(
        select(Item).options(joinedload(Item.column))
        .where(Item.planned_at >= now, Item.planned_at < now + WEEK)
        .order_by(Item.planned_at, Item.id)
    ).all()
    counts = dict(db.session.execute(
        select(Item.status, func.count()).where(Item.status.in_(list(STATUSES))).group_by(Item.status)).all())
    status = request.args.get("status")
    listed = []
    if status in STATUSES:
        listed = db.session.scalars(
            select(Item).options(joinedload(Item.column)).where(Item.status == status)
            .order_by(Item.planned_at.is_(None), Item.planned_at, Item.id.desc()).limit(LISTED)
        ).all()
    else:
        status = None
    can_write = current_user.can(Role.EDITOR)
    return render_template("web/dashboard/index.html", gaps=schedule.gaps(now), week=week, counts=counts,
                           statuses=STATUSES, status=status, listed=listed, can_write=can_write,
                           ics_url=ics_urls(None) if can_write else "")


@bp.post("/new-link")
@role_required(Role.ADMIN)
def new_link():
    """A new secret for the organisation's calendar address: the old address stops working at once."""
    organisation().ics_token = secrets.token_urlsafe(24)
    db.session.commit()
    flash(_("New calendar link made; the old one no longer works."), "success")
    return redirect(url_for("dashboard.index") + "#subscribe")
