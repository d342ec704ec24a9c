"""The "send a test message" button: one real message through a channel's adapter, and the
service's answer in words an administrator understands.

It sends at once, from the web request (bounded by the adapter's own timeout), because the
point is to see the answer now: a key pasted wrongly, a robot removed from its group, an IP not
on the allow-list.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

from channels import registry
from channels.base import Post
from channels.errors import ChannelError, OutcomeUnknown, Permanent, RateLimited, Retryable

from .i18n import organisation
from .models import Channel
from .previews import mask

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    ok: bool
    text: str


def test_post() -> Post:
    org = organisation()
    return Post(
        title=_("Test message from %(name)s", name=org.name),
        body=_("If you can read this, this channel is set up correctly. **Publisher** sent it when an "
               "administrator pressed *Send a test message*."),
        url=current_app.config["BASE_URL"].rstrip("/") + "/",
        locale=org.locale,
        timezone=org.timezone,
    )


def _words(service: str, exc: ChannelError) -> str:
    code = _(" (code %(code)s)", code=exc.code) if exc.code else ""
    if isinstance(exc, RateLimited):
        if exc.retry_after:
            return _("%(service)s says too many messages were sent: try again in %(seconds)d seconds.",
                     service=service, seconds=round(exc.retry_after))
        return _("%(service)s says too many messages were sent: try again in a minute.", service=service)
    if isinstance(exc, Permanent):
        return _("%(service)s refused the test message: %(message)s%(code)s. Check this channel's settings.",
                 service=service, message=exc.message, code=code)
    if isinstance(exc, OutcomeUnknown):
        return _("%(service)s did not answer (%(message)s). The message may or may not have arrived: look in the "
                 "group or account before you try again.", service=service, message=exc.message)
    if isinstance(exc, Retryable):
        return _("%(service)s could not take the message now: %(message)s%(code)s. Try again later; if it "
                 "lasts, check the address and this server's network.", service=service, message=exc.message,
                 code=code)
    return _("%(service)s answered with an error: %(message)s%(code)s.", service=service, message=exc.message,
             code=code)


def send_test(channel: Channel) -> Outcome:
    adapter_cls = registry.get(channel.type)
    service = str(adapter_cls.label or channel.type)
    config = channel.config
    secrets = [str(config[name]) for name in adapter_cls.secret_fields() if config.get(name) not in (None, "")]
    adapter = adapter_cls(config)
    try:
        message = adapter.render(test_post())
    except Exception as exc:  # the adapter's own complaint, e.g. a WeChat article needs a cover
        return Outcome(False, mask(_("%(service)s cannot format a message with these settings: %(reason)s",
                                     service=service, reason=str(exc) or type(exc).__name__), secrets))
    try:
        receipt = adapter.send(message, idempotency_key=f"test-{uuid.uuid4().hex}")
    except ChannelError as exc:
        log.info("test message on channel %s: %s %s", channel.id, type(exc).__name__, exc.code)
        return Outcome(False, mask(_words(service, exc), secrets))
    except Exception as exc:  # a bug in an adapter must read as one, not as a crash page
        log.exception("test message on channel %s: the adapter failed", channel.id)
        return Outcome(False, mask(_("%(service)s could not send: %(reason)s", service=service,
                                     reason=type(exc).__name__), secrets))
    log.info("test message on channel %s: sent", channel.id)
    text = _("%(service)s accepted the test message.", service=service)
    if receipt.url:
        text += " " + _("It is at %(url)s.", url=receipt.url)
    elif receipt.remote_id:
        text += " " + _("Its id there is %(id)s.", id=receipt.remote_id)
    return Outcome(True, mask(text, secrets))
