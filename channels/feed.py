"""The public RSS and Atom feeds as a channel.

Sending to a feed publishes the item in it: the feed pages (publisher/feeds.py) list the items
whose delivery to a feed channel was sent. Nothing leaves the machine, so a repeat is harmless.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt


class Feed(Channel):
    type = "feed"
    label = _l("RSS / Atom feed")
    idempotent = True
    fields = (Field("title", _l("Feed title (optional)"), required=False),)
    limits = Limits(markup="html")

    def render(self, post: Post) -> Message:
        # The entry's content as feed readers show it (templates/posts/feed/); the feed pages
        # render the same way when they list the item.
        html = templating.render("feed", post, "html", body=Markup(markup.safe_html(post.body)))  # noqa: S704
        return Message(payload={"title": post.title, "url": post.url, "html": html}, preview=html, length=len(html))

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        return Receipt(remote_id=idempotency_key, url=message.payload["url"])


ADAPTER = Feed
