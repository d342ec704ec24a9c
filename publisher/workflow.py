"""The approval workflow and the item history: the rules shared by the web pages and the JSON API.

draft -> in_review -> approved -> scheduled -> published. With approval switched off
(Organisation.require_approval False) editors schedule a draft directly. A reviewer approves or
sends back with a comment. Content edited after submission goes back to review, and its planned
deliveries wait (the scheduler only claims deliveries of scheduled or published items). Editing an
item that already went out never sends it again; republishing is an explicit act.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask_babel import gettext as _

from .extensions import db
from .i18n import organisation
from .items import Conflict, Invalid, move_item, schedule_item
from .models import Delivery, DeliveryStatus, Item, ItemEvent, ItemStatus, Role, User, utcnow

# What an edit is compared on, and which of those fields are the content a reviewer approved.
TRACKED_FIELDS = ("title", "body", "column_id", "origin", "format", "theme", "planned_at", "cover_id", "file_id",
                  "link_url", "duration_seconds", "event_start", "event_end", "event_place", "event_url", "media_ids")
CONTENT_FIELDS = ("title", "body", "format", "cover_id", "file_id", "link_url", "duration_seconds", "event_start",
                  "event_end", "event_place", "event_url", "media_ids")


class NotAllowed(Exception):
    """The user's role does not allow this action (HTTP 403). The message says who may."""


def approval_required() -> bool:
    return organisation().require_approval


def _plain(value: Any) -> Any:
    """A value as the history stores it (JSON)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value


def current_values(item: Item) -> dict[str, Any]:
    values = {name: getattr(item, name) for name in TRACKED_FIELDS if name != "media_ids"}
    values["media_ids"] = [m.id for m in item.media]
    return values


def changes_between(item: Item, data: dict[str, Any]) -> dict[str, list]:
    """{field: [before, after]} for every tracked field in `data` that differs from the item."""
    before = current_values(item)
    return {
        name: [_plain(before[name]), _plain(data[name])]
        for name in TRACKED_FIELDS
        if name in data and _plain(before[name]) != _plain(data[name])
    }


def record(item: Item, user: User | None, action: str, changes: dict | None = None, comment: str = "") -> ItemEvent:
    event = ItemEvent(item=item, user=user, action=action, at=utcnow(), comment=comment,
                      changes=json.dumps(changes, ensure_ascii=False) if changes else "")
    db.session.add(event)
    return event


def event_changes(event: ItemEvent) -> dict[str, list]:
    return json.loads(event.changes) if event.changes else {}


# --- permissions ----------------------------------------------------------------------------------

def _require(user: User, role: Role) -> None:
    if not user.can(role):
        if role == Role.REVIEWER:
            raise NotAllowed(_("Only reviewers and admins can approve or send back an item."))
        raise NotAllowed(_("Only editors and admins can do this."))


def _pending(item: Item) -> list[Delivery]:
    return [d for d in item.deliveries if d.status == DeliveryStatus.SCHEDULED]


def status_name(status: str) -> str:
    return {
        ItemStatus.DRAFT: _("draft"), ItemStatus.IN_REVIEW: _("in review"), ItemStatus.APPROVED: _("approved"),
        ItemStatus.SCHEDULED: _("scheduled"), ItemStatus.PUBLISHED: _("published"),
    }.get(status, status)


# --- transitions ------------------------------------------------------------------------------------

def submit(item: Item, user: User) -> None:
    """draft -> in_review. The caller commits."""
    _require(user, Role.EDITOR)
    if item.status != ItemStatus.DRAFT:
        raise Conflict(_("Only a draft can be submitted for review; this item is %(status)s.",
                        status=status_name(item.status)))
    item.status = ItemStatus.IN_REVIEW
    record(item, user, "submitted")
    db.session.flush()


def approve(item: Item, user: User, comment: str = "") -> None:
    """in_review -> approved, then scheduled when it has planned deliveries. The caller commits."""
    _require(user, Role.REVIEWER)
    if item.status != ItemStatus.IN_REVIEW:
        raise Conflict(_("Only an item in review can be approved; this item is %(status)s.",
                        status=status_name(item.status)))
    item.status = ItemStatus.SCHEDULED if _pending(item) else ItemStatus.APPROVED
    item.reviewed_by = user
    item.reviewed_at = utcnow()
    item.review_comment = comment.strip()
    record(item, user, "approved", comment=comment.strip())
    db.session.flush()


def send_back(item: Item, user: User, comment: str) -> None:
    """in_review -> draft with a comment the author sees. The caller commits."""
    _require(user, Role.REVIEWER)
    if item.status != ItemStatus.IN_REVIEW:
        raise Conflict(_("Only an item in review can be sent back; this item is %(status)s.",
                        status=status_name(item.status)))
    comment = (comment or "").strip()
    if not comment:
        raise Invalid({"comment": _("Say what needs to change: the author reads this comment.")})
    item.status = ItemStatus.DRAFT
    item.reviewed_by = user
    item.reviewed_at = utcnow()
    item.review_comment = comment
    record(item, user, "sent_back", comment=comment)
    db.session.flush()


def plan(item: Item, channel_ids: list[int], due_at: datetime | None, user: User) -> list[Delivery]:
    """Plan deliveries for an item that has not gone out yet. With approval required they wait
    for approval (dispatch.schedule keeps the item's state); without it a draft is scheduled."""
    _require(user, Role.EDITOR)
    if item.status == ItemStatus.PUBLISHED:
        raise Conflict(_("This item has already been published. Use \"Republish\" to send it again."))
    made = schedule_item(item, channel_ids, due_at)
    record(item, user, "scheduled", {"channels": [None, sorted(d.channel_id for d in made)]})
    return made


def republish(item: Item, channel_ids: list[int], due_at: datetime | None, user: User) -> list[Delivery]:
    """New deliveries of a published item: the only way an item goes out again. The caller commits."""
    _require(user, Role.EDITOR)
    if item.status != ItemStatus.PUBLISHED:
        raise Conflict(_("Only a published item can be republished; this item is %(status)s.",
                        status=status_name(item.status)))
    made = schedule_item(item, channel_ids, due_at)
    record(item, user, "republished", {"channels": [None, sorted(d.channel_id for d in made)]})
    return made


def edit(item: Item, values: dict[str, Any], user: User) -> dict[str, list]:
    """Apply validated values (items.validate_item plus "media_ids") and record what changed.

    Content changed after submission goes back to review while approval is required; its
    deliveries wait until it is approved again. Returns the changes. The caller commits.
    """
    _require(user, Role.EDITOR)
    from .media import attach

    changes = changes_between(item, values)
    for name, value in values.items():
        if name not in ("media_ids", "planned_at"):
            setattr(item, name, value)
    if "planned_at" in changes:
        if values["planned_at"] is None:
            item.planned_at = None
        else:  # its waiting deliveries follow; refused for an item that already went out
            move_item(item, values["planned_at"], None)
    if "media_ids" in changes:
        attach(item, values["media_ids"])
    if not changes:
        return changes
    record(item, user, "edited", changes)
    waiting = item.status in (ItemStatus.IN_REVIEW, ItemStatus.APPROVED, ItemStatus.SCHEDULED)
    if waiting and approval_required() and changes.keys() & set(CONTENT_FIELDS) and item.status != ItemStatus.IN_REVIEW:
        item.status = ItemStatus.IN_REVIEW
        record(item, user, "back_to_review")
    db.session.flush()
    return changes


def back_to_review_on_edit(item: Item) -> bool:
    """Whether saving new content would send this item back to review (the edit page says so)."""
    return approval_required() and item.status in (ItemStatus.APPROVED, ItemStatus.SCHEDULED)
