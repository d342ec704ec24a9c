"""The database: the single source of truth. Redis only carries work to the workers."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from sqlalchemy import Column as sa_Column
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    case,
    exists,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database.

    PostgreSQL keeps timestamptz; SQLite has no timezone type, so values are stored as naive UTC
    (which still sorts and compares correctly) and come back aware. A naive value is refused:
    a naive timestamp is how posts end up going out at the wrong hour.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything, including users, channels and settings
    EDITOR = "editor"  # writes and schedules items
    REVIEWER = "reviewer"  # reads everything, approves (see the workflow)


class Origin(enum.StrEnum):
    PGC = "pgc"
    UGC = "ugc"


class Format(enum.StrEnum):
    ARTICLE = "article"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    EVENT = "event"


class ItemStatus(enum.StrEnum):
    """draft -> in_review -> approved -> scheduled -> published (see workflow.py).

    With approval switched off, draft goes straight to scheduled. Only scheduled and published
    items have deliveries that the scheduler may claim: nothing reaches a channel unapproved.
    """

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"


SENDABLE_ITEM_STATUSES = (ItemStatus.SCHEDULED, ItemStatus.PUBLISHED)


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


class DeliveryStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for next_attempt_at (a first try or a retry)
    # Claimed by a scheduler tick, job in Redis, lease running. Not stored in deliveries.status: a
    # claim is a row of delivery_claims beside a delivery that stays `scheduled` (see DeliveryClaim);
    # Delivery.state and the pages show it.
    QUEUED = "queued"
    SENDING = "sending"  # a worker is talking to the channel, lease running
    SENT = "sent"
    FAILED = "failed"  # permanent error or retries exhausted
    UNCONFIRMED = "unconfirmed"  # outcome unknown on a channel that cannot deduplicate: an editor decides
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


def _str_enum(kind: type[enum.StrEnum]) -> String:
    return String(max(len(v) for v in kind) + 4)


DEFAULT_ORGANISATION = {"name": "My community", "timezone": "Asia/Shanghai", "locale": "zh_CN"}


class Organisation(db.Model):
    """The one organisation this installation serves (its row id is always 1)."""

    __tablename__ = "organisation"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default=DEFAULT_ORGANISATION["name"])
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ORGANISATION["timezone"])
    locale: Mapped[str] = mapped_column(String(16), default=DEFAULT_ORGANISATION["locale"])
    # Nothing reaches a channel before a reviewer approved it, unless this is switched off.
    require_approval: Mapped[bool] = mapped_column(default=True)
    # The secret part of the calendar subscription (.ics) URLs; changing it revokes old links.
    ics_token: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_urlsafe(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(_str_enum(Role), default=Role.EDITOR)
    active: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def can(self, role: Role) -> bool:
        """Admins can do what editors can; editors and reviewers are separate duties."""
        return self.role == Role.ADMIN or self.role == role


class ApiToken(db.Model):
    """A bearer token for the JSON API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user: Mapped[User] = relationship()


column_channels = Table(
    "column_channels",
    db.metadata,
    sa_Column("column_id", ForeignKey("columns.id", ondelete="CASCADE"), primary_key=True),
    sa_Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
)


class Column(db.Model):
    """A branded, recurring programme (栏目): a cadence of slots, numbered issues, rotating themes."""

    __tablename__ = "columns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    color: Mapped[str] = mapped_column(String(16), default="#3b82f6")
    # Brand kit: how every post of the column opens and closes.
    intro: Mapped[str] = mapped_column(Text, default="")
    signoff: Mapped[str] = mapped_column(Text, default="")
    hashtags: Mapped[str] = mapped_column(String(300), default="")  # space-separated, without '#'
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    # Cadence: an RFC 5545 RRULE (without DTSTART) expanded from `cadence_start` in `timezone`,
    # so "every Tuesday 20:00" stays 20:00 local across daylight-saving changes.
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ORGANISATION["timezone"])
    cadence: Mapped[str] = mapped_column(String(500), default="")
    cadence_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_issue: Mapped[int] = mapped_column(default=1)  # the number of the column's first issue
    themes: Mapped[str] = mapped_column(Text, default="")  # one per line, rotating per issue
    slots_ahead: Mapped[int] = mapped_column(default=3)  # warn when any of the next N slots is open
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    ics_token: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_urlsafe(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User | None] = relationship()
    cover: Mapped[Media | None] = relationship()
    default_channels: Mapped[list[Channel]] = relationship(secondary=column_channels, order_by="Channel.name")

    @property
    def theme_list(self) -> list[str]:
        return [t.strip() for t in self.themes.splitlines() if t.strip()]

    @property
    def hashtag_list(self) -> list[str]:
        return [t.lstrip("#") for t in self.hashtags.split() if t.lstrip("#")]


class Media(db.Model):
    """An uploaded file, checked by its content and stored under a random name outside static/."""

    __tablename__ = "media"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(_str_enum(MediaKind))
    original_name: Mapped[str] = mapped_column(String(255), default="")
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    alt: Mapped[str] = mapped_column(String(300), default="")
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    uploaded_by: Mapped[User | None] = relationship()


item_media = Table(
    "item_media",
    db.metadata,
    sa_Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    sa_Column("media_id", ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
    sa_Column("position", Integer, nullable=False, default=0),
)


class Item(db.Model):
    """One piece of content (PGC or UGC) in one format."""

    __tablename__ = "items"
    __table_args__ = (
        # Predicted issue numbers (schedule.Numbering): the last number per column, the planned
        # times of a column in a range, and the unpublished items planned before a range.
        Index("ix_items_column_issue", "column_id", "issue_number"),
        Index("ix_items_column_planned", "column_id", "planned_at"),
        Index("ix_items_status_planned", "status", "planned_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    column_id: Mapped[int | None] = mapped_column(ForeignKey("columns.id", ondelete="SET NULL"))
    origin: Mapped[str] = mapped_column(_str_enum(Origin), default=Origin.PGC)
    format: Mapped[str] = mapped_column(_str_enum(Format), default=Format.ARTICLE)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    status: Mapped[str] = mapped_column(_str_enum(ItemStatus), default=ItemStatus.DRAFT)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the item is planned to go out: its place on the calendar, and the column slot it fills
    # when it equals one of the column's slot times. Deliveries are due at this time.
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Issue number (第N期): assigned when the item is first published, in publishing order.
    issue_number: Mapped[int | None] = mapped_column(Integer)
    theme: Mapped[str] = mapped_column(String(200), default="")
    # Format-specific fields (see Format): a cover for articles, a link or file for video/audio,
    # time and place for events. Images are in `media`.
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    link_url: Mapped[str] = mapped_column(String(1000), default="")
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    event_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_place: Mapped[str] = mapped_column(String(300), default="")
    event_url: Mapped[str] = mapped_column(String(1000), default="")
    # The last review decision.
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_comment: Mapped[str] = mapped_column(Text, default="")
    # Optimistic locking: a save based on a stale copy is refused instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, default=1)

    column: Mapped[Column | None] = relationship()
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])
    cover: Mapped[Media | None] = relationship(foreign_keys=[cover_id])
    file: Mapped[Media | None] = relationship(foreign_keys=[file_id])
    media: Mapped[list[Media]] = relationship(secondary=item_media, order_by=item_media.c.position)
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="item", order_by="Delivery.id")
    history: Mapped[list[ItemEvent]] = relationship(
        back_populates="item", order_by="ItemEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class ItemEvent(db.Model):
    """An item's history: who did what, when, and what changed (field: [before, after])."""

    __tablename__ = "item_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # created, edited, submitted, approved, sent_back, scheduled, rescheduled, republished, published …
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[str] = mapped_column(Text, default="")  # JSON
    comment: Mapped[str] = mapped_column(Text, default="")

    item: Mapped[Item] = relationship(back_populates="history")
    user: Mapped[User | None] = relationship()


class Channel(db.Model):
    """One configured destination. Its configuration is encrypted at rest (see crypto.py)."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(40))
    config_encrypted: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def config(self) -> dict:
        from .crypto import decrypt_json

        return decrypt_json(self.config_encrypted) if self.config_encrypted else {}

    @config.setter
    def config(self, value: dict) -> None:
        from .crypto import encrypt_json

        self.config_encrypted = encrypt_json(value)


def new_idempotency_key() -> str:
    return secrets.token_hex(16)


class Delivery(db.Model):
    """One item going to one channel at one time, with its own status and history."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(_str_enum(DeliveryStatus), default=DeliveryStatus.SCHEDULED)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Claims that ended so far (the send started, or the claim was lost or given back); a claim runs
    # attempt + 1, and that number names its job.
    attempt: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)  # retryable failures so far (rate limits excluded)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The same key on every attempt, so an idempotent channel drops a repeat.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True, default=new_idempotency_key)
    external_id: Mapped[str | None] = mapped_column(String(200))
    external_url: Mapped[str | None] = mapped_column(String(500))
    # Why the last attempt ended as it did: a reason key (see REASONS in dispatch.py), the
    # service's own code and its own words.
    last_reason: Mapped[str | None] = mapped_column(String(32))
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    item: Mapped[Item] = relationship(back_populates="deliveries")
    channel: Mapped[Channel] = relationship()
    # Written and removed only by dispatch.py and sending.py, with plain statements.
    claim: Mapped[DeliveryClaim | None] = relationship(lazy="selectin", viewonly=True)
    events: Mapped[list[DeliveryEvent]] = relationship(
        back_populates="delivery", order_by="DeliveryEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_due_at", "due_at"),  # the calendar's date-range queries
        # The claim's per-channel order: is the channel busy; does an earlier delivery of it wait for
        # a retry (only deliveries claimed before can, so this index holds only those).
        Index("ix_deliveries_channel_status_due", "channel_id", "status", "due_at"),
        Index("ix_deliveries_waiting", "channel_id", "due_at",
              postgresql_where=text("status = 'scheduled' AND attempt > 0"),
              sqlite_where=text("status = 'scheduled' AND attempt > 0")),
    )

    @hybrid_property
    def state(self) -> str:
        """The status as people see it: `queued` while claimed (see DeliveryClaim)."""
        return DeliveryStatus.QUEUED if self.status == DeliveryStatus.SCHEDULED and self.claim else self.status

    @state.inplace.expression
    @classmethod
    def _state_expression(cls):
        return case((cls.in_state(DeliveryStatus.QUEUED), DeliveryStatus.QUEUED.value), else_=cls.status)

    @classmethod
    def in_state(cls, state: str):
        """A WHERE for the deliveries in `state` as people see it (claimed ones are `queued`), which
        still reads the status index."""
        claimed = exists().where(DeliveryClaim.delivery_id == cls.id)
        if state == DeliveryStatus.QUEUED:
            return and_(cls.status == DeliveryStatus.SCHEDULED, claimed)
        if state == DeliveryStatus.SCHEDULED:
            return and_(cls.status == DeliveryStatus.SCHEDULED, ~claimed)
        return cls.status == state


class DeliveryClaim(db.Model):
    """A scheduled delivery handed to the workers: the scheduler's claim, until a worker starts it
    (then the delivery is `sending`) or its lease runs out (the sweep takes it back).

    A row of its own, not a status of the delivery, because claiming is the scheduler's hot path: an
    insert into this narrow table costs a fraction of an update of the wide, much-indexed deliveries
    row (whose status is in three indexes, so every such update writes an entry into each of the
    table's six). The delivery is changed once, when the send starts.

    The claim holds while the delivery is still as it was claimed: `scheduled`, at attempt
    `attempt - 1`, due at `next_attempt_at`; every use of a claim checks that in the same statement.
    Editors cannot cancel or move a claimed delivery (dispatch._unclaimed); a change that raced the
    claim anyway makes it void, and its lease ends it.
    """

    __tablename__ = "delivery_claims"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column()  # the attempt this claim runs: names its job
    channel_id: Mapped[int] = mapped_column(index=True)  # a channel with a claim is busy
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the time it was claimed for
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DeliveryEvent(db.Model):
    """The history of a delivery: every state it entered, and why."""

    __tablename__ = "delivery_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempt: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(_str_enum(DeliveryStatus))
    reason: Mapped[str | None] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[Delivery] = relationship(back_populates="events")


class DemoReceipt(db.Model):
    """A post that reached the built-in demo receiver (see web/demo.py)."""

    __tablename__ = "demo_receipts"
    id: Mapped[int] = mapped_column(primary_key=True)
    inbox: Mapped[str] = mapped_column(String(80), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300), default="")
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    repeats: Mapped[int] = mapped_column(default=0)  # later copies with the same key, dropped

    __table_args__ = (UniqueConstraint("inbox", "idempotency_key"),)
