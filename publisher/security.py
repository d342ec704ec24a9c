"""Passwords (argon2), API tokens, the user loaders and role checks."""

from __future__ import annotations

import hashlib
import secrets
from functools import wraps

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, request
from flask_login import current_user
from sqlalchemy import select

from .extensions import db, login_manager
from .models import ApiToken, Role, User, utcnow

_hasher = PasswordHasher()
TOKEN_PREFIX = "pub_"  # noqa: S105  (a marker, not a secret)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    if user is None:
        _hasher.hash(password)  # spend the same time, so unknown e-mails cannot be told apart
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(email: str, password: str, role: Role = Role.EDITOR, name: str = "") -> User:
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    user = User(email=email.strip().lower(), name=name or email.split("@")[0], role=role,
                password_hash=hash_password(password))
    db.session.add(user)
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the token itself, which is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user=user, name=name, token_hash=_token_hash(token), prefix=token[:10])
    db.session.add(row)
    return row, token


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user and user.active else None


@login_manager.request_loader
def load_user_from_token(req) -> User | None:
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(header[7:].strip())))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    g.api_token = row
    return row.user


def authenticated_by_token() -> bool:
    return "api_token" in g or request.headers.get("Authorization", "").startswith("Bearer ")


def role_required(*roles: Role):
    """Allow admins and the given roles; everyone else gets 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role != Role.ADMIN and current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator
