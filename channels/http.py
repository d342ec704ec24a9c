"""HTTP calls for adapters, with the transport failures already sorted into the contract's errors.

Whether a failed call may be retried depends on whether the request reached the service:
a refused connection left nothing behind (Retryable); a read timeout or a reset after sending
may have posted (OutcomeUnknown).
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from .errors import OutcomeUnknown, Permanent, Retryable


def _never_connected(exc: requests.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectionRefusedError))


def request(session: requests.Session, method: str, url: str, *, timeout: float, **kwargs) -> requests.Response:
    # The errors raised here never chain requests' exception: its text holds the URL, and with it
    # a robot's key or a bot's token, which a logged traceback would then show.
    try:
        return session.request(method, url, timeout=(min(5.0, timeout), timeout), **kwargs)
    except requests.ConnectTimeout:
        raise Retryable("the service could not be reached in time", code="connect_timeout") from None
    except requests.ReadTimeout:
        raise OutcomeUnknown(f"no answer within {timeout:g} seconds", code="timeout") from None
    except requests.ConnectionError as exc:
        if _never_connected(exc):
            raise Retryable("the service could not be reached", code="connection_refused") from None
        raise OutcomeUnknown("the connection broke before the service answered", code="connection_reset") from None
    except requests.RequestException as exc:
        raise Retryable(f"request failed: {type(exc).__name__}", code="request_error") from None


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


@dataclass
class Image:
    data: bytes
    filename: str
    content_type: str


def load_image(session: requests.Session, post, index: int, *, timeout: float, max_bytes: int) -> Image:
    """The post's image number `index` as bytes: from this server's disk when the worker shares it
    (Post.image_files), else downloaded from its URL. Too big is Permanent: the service would refuse it."""
    url = post.images[index]
    filename = PurePosixPath(urlsplit(url).path).name or f"image-{index}"
    path = post.image_files[index] if index < len(post.image_files) else None
    if path and os.path.exists(path):
        size = os.path.getsize(path)
        if size > max_bytes:
            raise Permanent(f"image {filename} is {size} bytes; this service takes at most {max_bytes}",
                            code="image_too_large")
        with open(path, "rb") as fh:
            data = fh.read()
        return Image(data, filename, mimetypes.guess_type(filename)[0] or "application/octet-stream")
    try:
        resp = request(session, "GET", url, timeout=timeout, stream=True)
    except OutcomeUnknown as exc:  # a download posts nothing: trying again is safe
        raise Retryable(f"image {filename} could not be downloaded: {exc.message}", code=exc.code) from None
    if resp.status_code >= 400:
        error = Retryable if resp.status_code >= 500 else Permanent
        raise error(f"image {filename} could not be downloaded (HTTP {resp.status_code})", code="image_download")
    data = b""
    for chunk in resp.iter_content(64 * 1024):
        data += chunk
        if len(data) > max_bytes:
            resp.close()
            raise Permanent(f"image {filename} is larger than {max_bytes} bytes, the most this service takes",
                            code="image_too_large")
    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    return Image(data, filename, content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream")
