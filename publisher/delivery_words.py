"""What a delivery's state means, in words an editor understands: status names, reason labels and
one sentence per state. The item page and the deliveries page both use these."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from . import dispatch
from .i18n import localtime
from .models import Delivery, DeliveryStatus

STATUS_NAMES = {
    DeliveryStatus.SCHEDULED: _l("scheduled"), DeliveryStatus.QUEUED: _l("queued"),
    DeliveryStatus.SENDING: _l("being sent"), DeliveryStatus.SENT: _l("sent"), DeliveryStatus.FAILED: _l("failed"),
    DeliveryStatus.UNCONFIRMED: _l("unconfirmed"), DeliveryStatus.CANCELLED: _l("cancelled"),
}

REASON_LABELS = {
    "scheduled": _l("Planned"),
    "claimed": _l("Picked up"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "rate_limited": _l("Slowed down by the channel"),
    "retryable": _l("Temporary error"),
    "gave_up": _l("Gave up"),
    "permanent": _l("Refused by the channel"),
    "unknown": _l("No answer"),
    "render_error": _l("Could not be prepared"),
    "queue_lost": _l("Handed out again"),
    "worker_lost": _l("Interrupted"),
    "cancelled": _l("Cancelled"),
    "manual": _l("By an editor"),
    "held": _l("Waiting its turn"),
    "released": _l("Handed back by a stopping worker"),
}


def last_reason(delivery: Delivery) -> str:
    """The reason of the last thing that happened to it (its history is loaded)."""
    return delivery.events[-1].reason if delivery.events else "scheduled"


def explain(delivery: Delivery, reason: str | None = None) -> str:
    """One sentence for the delivery's current state, from the last thing that happened to it.
    Pass `reason` when it is known already, so that the history need not be loaded."""
    reason = reason or last_reason(delivery)
    status = delivery.state
    at = localtime(delivery.next_attempt_at, "HH:mm:ss")
    waiting = status == DeliveryStatus.SCHEDULED
    if waiting and reason == "scheduled":
        return _("Planned; it goes out at %(time)s.", time=localtime(delivery.due_at))
    if waiting and reason == "manual":
        return _("An editor asked to try again; it goes out at %(time)s.", time=at)
    if waiting and reason == "rate_limited":
        return _("The channel's rate limit is reached (the service asked us to slow down, or this channel's own "
                 "limit is full); it goes out at %(time)s, not counted as a failure.", time=at)
    if waiting and reason == "held":
        return _("An earlier post to this channel is waiting, and posts keep their order; this one goes out "
                 "after it.")
    if waiting and reason == "released":
        return _("A worker stopped before sending it; another worker takes it at once.")
    if waiting and reason == "retryable":
        return _("The channel could not take it just now (it may be down or busy); trying again at %(time)s.",
                 time=at)
    if waiting and reason == "unknown":
        return _("We got no answer; sending again at %(time)s. The channel drops repeats, so it will not appear "
                 "twice.", time=at)
    if waiting and reason == "worker_lost":
        return _("The worker stopped in the middle of sending; trying again at %(time)s (the channel drops "
                 "repeats).", time=at)
    if waiting and reason == "queue_lost":
        return _("It waited too long for a worker, so it was handed out again.")
    if status == DeliveryStatus.FAILED and reason == "gave_up":
        return _("The channel kept failing, so we stopped after %(count)d tries. Retry when it works again.",
                 count=delivery.failures)
    if status == DeliveryStatus.FAILED and reason == "render_error":
        return _("The item could not be prepared for this channel; its settings may be incomplete.")
    if status == DeliveryStatus.UNCONFIRMED and reason == "worker_lost":
        return _("The worker stopped in the middle of sending, so we cannot tell whether it arrived. Look at the "
                 "channel, then mark it as sent or retry.")
    if status == DeliveryStatus.SENT and reason == "manual":
        return _("An editor marked it as sent.")
    return _status_sentence(status, at)


def _status_sentence(status: str, at: str) -> str:
    if status == DeliveryStatus.SCHEDULED:
        return _("Waiting; it goes out at %(time)s.", time=at)
    if status == DeliveryStatus.QUEUED:
        return _("Picked up by the scheduler; waiting for a free worker.")
    if status == DeliveryStatus.SENDING:
        return _("Being sent to the channel right now.")
    if status == DeliveryStatus.SENT:
        return _("The channel accepted it.")
    if status == DeliveryStatus.FAILED:
        return _("The channel refused it. Check the channel's settings or the content, then retry.")
    if status == DeliveryStatus.UNCONFIRMED:
        return _("We sent it but got no answer, so we cannot tell whether it arrived. Look at the channel, then "
                 "mark it as sent or retry.")
    return _("Cancelled by an editor.")


# What an editor can do to a delivery (each a conditional change in dispatch), and the words after it.
ACTIONS = {
    "cancel": (dispatch.cancel, _l("The delivery to %(channel)s is cancelled.")),
    "retry": (dispatch.retry_now, _l("The delivery to %(channel)s will be tried again now.")),
    "mark-sent": (dispatch.mark_sent, _l("The delivery to %(channel)s is marked as sent.")),
}


def refusal(channel: str, status: str) -> str:
    """Why an action changed nothing: the delivery moved on since the page was drawn."""
    return _("The delivery to %(channel)s is %(status)s by now, so nothing was changed.", channel=channel,
             status=STATUS_NAMES.get(status, status))
