"""The adapter contract: a channel-neutral Post in, the service's payload out, a Receipt back.

An adapter is a subclass of `Channel` in a small module of its own. It declares its `type`,
whether the service deduplicates repeats (`idempotent`), its configuration `fields` (which are
secret) and its `limits`, and implements `render` (pure) and `send`. See docs/channels.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests


@dataclass(frozen=True)
class Field:
    """One configuration setting of a channel, as the settings form shows it."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    kind: str = "string"  # string | url | integer | boolean | text
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Limits:
    max_length: int | None = None  # of the rendered text, counted in `length_unit`
    length_unit: str = "characters"  # characters | bytes | utf16
    markup: str = "plain"  # plain | markdown | html | json …
    rate_limit: str | None = None  # in the `limits` library's notation, e.g. "20/minute"


@dataclass
class Post:
    """An item as every channel sees it, before any channel's formatting."""

    title: str
    body: str  # Markdown
    url: str = ""  # the full item on our site
    format: str = "article"
    images: list[str] = field(default_factory=list)
    column: str = ""
    brand: dict[str, Any] = field(default_factory=dict)  # intro, sign-off, hashtags, cover …
    origin: str = "pgc"
    author: str = ""
    item_id: int | None = None
    published_at: str | None = None  # ISO 8601, UTC
    issue_number: int | None = None  # 第N期: final once published, predicted before
    theme: str = ""  # the column's theme for this issue
    extra: dict[str, Any] = field(default_factory=dict)  # format fields: event time and place, video/audio link …
    locale: str = "zh_CN"  # the organisation's language: 第12期 or No. 12, dates
    timezone: str = "UTC"  # the organisation's zone, for event times in the text
    image_files: list[str] = field(default_factory=list)  # local paths of `images` (same order) when stored here


@dataclass
class Message:
    """What will be sent: the service's payload and a text preview of it."""

    payload: Any
    preview: str = ""
    length: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Receipt:
    remote_id: str | None = None
    url: str | None = None
    raw: Any = None


class Channel:
    type: ClassVar[str] = ""
    label: ClassVar[str] = ""
    idempotent: ClassVar[bool] = False
    fields: ClassVar[tuple[Field, ...]] = ()
    limits: ClassVar[Limits] = Limits()
    default_timeout: ClassVar[float] = 10.0

    def __init__(self, config: dict, *, session: requests.Session | None = None):
        self.config = dict(config)
        self.session = session or requests.Session()
        self.timeout = float(self.config.get("timeout") or self.default_timeout)

    @classmethod
    def secret_fields(cls) -> set[str]:
        return {f.name for f in cls.fields if f.secret}

    @classmethod
    def validate_config(cls, config: dict) -> dict[str, str]:
        """Errors by field name; empty when the configuration is complete."""
        return {f.name: "required" for f in cls.fields if f.required and config.get(f.name) in (None, "")}

    def max_send_seconds(self) -> float:
        """How long one send may take at most; the delivery lease is based on it."""
        return 2 * self.timeout

    def render(self, post: Post) -> Message:
        raise NotImplementedError

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        raise NotImplementedError
