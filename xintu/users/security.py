"""Access tokens (JWT, HS256) for app users and admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import jwt

from xintu.models.base import utcnow

TokenKind = Literal["user", "admin"]
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    kind: TokenKind
    subject_id: int


def create_access_token(
    kind: TokenKind, subject_id: int, secret: str, expires_in: timedelta
) -> str:
    now = utcnow()
    payload = {"sub": str(subject_id), "typ": kind, "iat": now, "exp": now + expires_in}
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def decode_access_token(token: str, secret: str) -> TokenClaims | None:
    """The token's claims, or None when it is malformed, forged or expired."""
    try:
        payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp"]})
        kind = payload["typ"]
        if kind not in ("user", "admin"):
            return None
        return TokenClaims(kind=kind, subject_id=int(payload["sub"]))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return None
