"""Channel secrets encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key is derived from the application's SECRET_KEY with HKDF, so one secret configures the
service; changing SECRET_KEY makes the stored channel credentials unreadable (re-enter them).
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class SecretsUnreadable(Exception):
    """The stored configuration was encrypted with another SECRET_KEY."""


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"publisher channel config").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_json(value: dict) -> str:
    return _fernet(current_app.config["SECRET_KEY"]).encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict:
    try:
        return json.loads(_fernet(current_app.config["SECRET_KEY"]).decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretsUnreadable("channel settings were encrypted with another secret key") from exc
