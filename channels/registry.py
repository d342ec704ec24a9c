"""Which adapters exist: every module of this package that defines `ADAPTER` (one adapter per
small file: channels/wecom.py, channels/slack.py …), plus any installed package that declares an
entry point in the `publisher.channels` group (``name = "package.module:AdapterClass"``)."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points

from .base import Channel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "publisher.channels"


class UnknownChannelType(LookupError):
    pass


@lru_cache(maxsize=1)
def available() -> dict[str, type[Channel]]:
    found: dict[str, type[Channel]] = {}
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if adapter is not None:
            found[adapter.type] = adapter
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken plugin must not take the built-in channels down with it
            log.exception("channel plugin %s could not be loaded", ep.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Channel) and cls.type):
            log.error("channel plugin %s is not a Channel subclass with a type", ep.value)
            continue
        found.setdefault(cls.type, cls)  # a plugin cannot replace a built-in adapter
    return found


def get(type_: str) -> type[Channel]:
    try:
        return available()[type_]
    except KeyError:
        raise UnknownChannelType(f"no channel adapter named {type_!r}") from None


def share_token_cache(cache) -> None:
    """Give every adapter that caches service tokens (`token_cache`, e.g. WeChat's access token,
    2,000 fetches a day) one cache shared by all processes: a Redis client fits the interface."""
    for adapter in available().values():
        if hasattr(adapter, "token_cache"):
            adapter.token_cache = cache
