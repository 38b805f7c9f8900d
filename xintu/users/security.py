"""Access tokens (JWT, HS256) for app users and admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from xintu.models.base import utcnow

TokenKind = Literal["user", "admin"]
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    kind: TokenKind
    subject_id: int
    # A guest account (free to create) rather than a WeChat-verified user; a user token
    # without the claim counts as a guest (DESIGN §3: only verified users count as themselves).
    guest: bool = True


def create_access_token(
    kind: TokenKind, subject_id: int, secret: str, expires_in: timedelta, *, guest: bool = True
) -> str:
    now = utcnow()
    payload = {
        "sub": str(subject_id),
        "typ": kind,
        "gst": guest,
        "iat": now,
        "exp": now + expires_in,
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def decode_access_token(token: str, secret: str) -> TokenClaims | None:
    """The token's claims, or None when it is malformed, forged or expired."""
    try:
        payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp"]})
        kind = payload["typ"]
        if kind not in ("user", "admin"):
            return None
        return TokenClaims(
            kind=kind, subject_id=int(payload["sub"]), guest=payload.get("gst") is not False
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return None


# Argon2id with pwdlib's recommended parameters; hashing takes tens of milliseconds on purpose,
# so callers on the event loop run these in a thread.
_password_hash = PasswordHash((Argon2Hasher(),))
# Verified when a username is unknown, so that a miss costs as long as a wrong password.
_DUMMY_HASH = _password_hash.hash("xintu-no-such-admin")


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (PHC string format)."""
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; a missing hash still spends the time of one check."""
    if password_hash is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False
    try:
        return _password_hash.verify(password, password_hash)
    except Exception:  # noqa: BLE001 - a corrupt stored hash is a failed login, not a 500
        return False
