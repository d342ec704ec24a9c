"""What a channel's answer means for the delivery, in five words.

Every adapter turns its service's answer into a Receipt or one of these, so the delivery engine
never needs to know how WeCom or Slack say "too fast".
"""

from __future__ import annotations


class ChannelError(Exception):
    """The service refused or failed; `code` and `message` are the service's own."""

    def __init__(self, message: str, *, code: str | int | None = None):
        super().__init__(message)
        self.message = message
        self.code = None if code is None else str(code)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class RateLimited(ChannelError):
    """Too many requests; try again after `retry_after` seconds (None when the service did not say)."""

    def __init__(self, message: str, *, code: str | int | None = None, retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Retryable(ChannelError):
    """Nothing was delivered and a later try may work (connection refused, 5xx, …)."""


class Permanent(ChannelError):
    """Trying again will not help (bad credentials, content too long, rejected)."""


class OutcomeUnknown(ChannelError):
    """The request left but no answer came back: the post may or may not be there."""
