"""HTTP calls for adapters, with the transport failures already sorted into the contract's errors.

Whether a failed call may be retried depends on whether the request reached the service:
a refused connection left nothing behind (Retryable); a read timeout or a reset after sending
may have posted (OutcomeUnknown).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from .errors import OutcomeUnknown, Retryable


def _never_connected(exc: requests.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectionRefusedError))


def request(session: requests.Session, method: str, url: str, *, timeout: float, **kwargs) -> requests.Response:
    try:
        return session.request(method, url, timeout=(min(5.0, timeout), timeout), **kwargs)
    except requests.ConnectTimeout as exc:
        raise Retryable("the service could not be reached in time", code="connect_timeout") from exc
    except requests.ReadTimeout as exc:
        raise OutcomeUnknown(f"no answer within {timeout:g} seconds", code="timeout") from exc
    except requests.ConnectionError as exc:
        if _never_connected(exc):
            raise Retryable("the service could not be reached", code="connection_refused") from exc
        raise OutcomeUnknown("the connection broke before the service answered", code="connection_reset") from exc
    except requests.RequestException as exc:
        raise Retryable(f"request failed: {type(exc).__name__}", code="request_error") from exc


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
