"""Configuration: defaults for a machine with no servers, overridden from the environment.

Every setting can be given as ``PUBLISHER_<NAME>`` in the environment or passed to
``create_app(config={...})``. The README has the table.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# name: (default, type). A default of None means "derived at start-up" (see load()).
SETTINGS: dict[str, tuple[object, type]] = {
    "INSTANCE_PATH": (str(REPO_ROOT / "instance"), str),
    "DATABASE_URL": (None, str),
    "REDIS_URL": (None, str),
    "SECRET_KEY": (None, str),
    "BASE_URL": ("http://127.0.0.1:5000", str),
    "HOST": ("127.0.0.1", str),
    "PORT": (5000, int),
    "WEB_WORKERS": (2, int),
    "WEB_THREADS": (4, int),
    "QUEUE": ("publisher", str),
    "TICK_SECONDS": (0.25, float),
    "CLAIM_BATCH": (500, int),
    "CLAIM_AHEAD_SECONDS": (1.0, float),
    "BATCH_SIZE": (100, int),
    "IN_FLIGHT": (32, int),
    "QUEUED_LEASE_SECONDS": (15.0, float),
    "LEASE_MARGIN_SECONDS": (15.0, float),
    "MAX_FAILURES": (8, int),
    "RETRY_BASE_SECONDS": (10.0, float),
    "RETRY_MAX_SECONDS": (3600.0, float),
    "PUBLIC_RATE_LIMIT": ("60 per minute", str),
    "LOGIN_RATE_LIMIT": ("10 per minute", str),
    "API_RATE_LIMIT": ("600 per minute", str),
    "TEST_MESSAGE_RATE_LIMIT": ("10 per minute", str),
    "SESSION_COOKIE_SECURE": (False, bool),
}


def _convert(value: str, kind: type) -> object:
    if kind is bool:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return kind(value)


def load(overrides: dict | None = None) -> dict:
    """Defaults < environment < overrides; then derive what depends on the instance folder."""
    conf: dict[str, object] = {name: default for name, (default, _) in SETTINGS.items()}
    for name, (_, kind) in SETTINGS.items():
        raw = os.environ.get(f"PUBLISHER_{name}")
        if raw not in (None, ""):
            conf[name] = _convert(raw, kind)
    conf.update(overrides or {})

    instance = Path(str(conf["INSTANCE_PATH"]))
    instance.mkdir(parents=True, exist_ok=True)
    if not conf["DATABASE_URL"]:
        conf["DATABASE_URL"] = f"sqlite:///{instance / 'publisher.db'}"
    if not conf["SECRET_KEY"]:
        conf["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    return conf


def _instance_secret(path: Path) -> str:
    """A random key kept in the instance folder, so sessions and encrypted secrets survive restarts.

    Production sets PUBLISHER_SECRET_KEY instead, identical on every machine.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process of the service made it first
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
