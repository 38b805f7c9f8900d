"""Annotated dependency aliases: routes declare what they need by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from xintu.config import Settings
from xintu.db import get_session
from xintu.errors import Forbidden, NotAuthenticated
from xintu.labels import label_problem
from xintu.users.accounts import AccountStatus
from xintu.users.security import TokenClaims, decode_access_token

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a
# thread pool, which costs more than these functions themselves on the hot paths.


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a verified token if any, the client's own label, and the IP."""

    ip: str
    token: TokenClaims | None
    label: str | None

    @property
    def user_id(self) -> int | None:
        """The authenticated app user's id (never taken from a header)."""
        if self.token is not None and self.token.kind == "user":
            return self.token.subject_id
        return None

    @property
    def uploader(self) -> str:
        """The identity that counts toward the cache quorum: a user, else an IP."""
        user_id = self.user_id
        return f"user:{user_id}" if user_id is not None else f"ip:{self.ip}"

    @property
    def log_user_id(self) -> str | None:
        """What request_log records as ``user_id``: the user, else the client's label."""
        user_id = self.user_id
        return f"user:{user_id}" if user_id is not None else self.label


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("The Authorization header must be 'Bearer <token>'")
    return token.strip()


def _token_claims(request: Request) -> TokenClaims | None:
    token = _bearer_token(request)
    if token is None:
        return None
    settings: Settings = request.app.state.settings
    claims = decode_access_token(token, settings.jwt_secret or "")
    if claims is None:
        raise NotAuthenticated("The token is invalid or expired")
    return claims


async def get_token_claims(request: Request) -> TokenClaims | None:
    """Claims of the bearer token; 401 for a bad token, None when there is none."""
    return _token_claims(request)


async def get_caller(request: Request) -> Caller:
    return caller_of(request)


def caller_of(request: Request) -> Caller:
    """Who sent ``request`` (401 for a malformed or invalid bearer token)."""
    claims = _token_claims(request)
    label = request.headers.get("x-user-id")
    if label is not None:
        label = _header_label(label)
    ip = request.client.host if request.client else "unknown"
    return Caller(ip=ip, token=claims, label=label)


def _header_label(raw: str) -> str | None:
    """The ``X-User-ID`` label as UTF-8 text; 422 when no database could store it."""
    try:
        # Starlette decodes header bytes as latin-1; clients send UTF-8 (device names).
        label = raw.encode("latin-1").decode("utf-8")
        problem = label_problem(label)
    except UnicodeError:
        label, problem = "", "must be UTF-8 text"
    if problem is not None:
        raise RequestValidationError(
            [{"loc": ("header", "x-user-id"), "msg": f"X-User-ID {problem}", "type": "value_error"}]
        )
    # "user:" labels belong to authenticated users only.
    label = label.strip()
    return label if label and not label.startswith("user:") else None


async def require_admin(
    request: Request,
    claims: Annotated[TokenClaims | None, Depends(get_token_claims)],
) -> TokenClaims:
    """An admin token whose admin still exists and is active (401 otherwise)."""
    if claims is None:
        raise NotAuthenticated()
    if claims.kind != "admin":
        raise Forbidden("An admin token is required")
    accounts: AccountStatus = request.app.state.accounts
    await accounts.require_admin(claims.subject_id)
    return claims


async def require_user(
    request: Request,
    claims: Annotated[TokenClaims | None, Depends(get_token_claims)],
) -> TokenClaims:
    """A user token whose account exists, is active and was not merged (401 otherwise)."""
    if claims is None:
        raise NotAuthenticated()
    if claims.kind != "user":
        raise Forbidden("A user token is required")
    accounts: AccountStatus = request.app.state.accounts
    await accounts.require_user(claims.subject_id)
    return claims


CallerDep = Annotated[Caller, Depends(get_caller)]
AdminClaims = Annotated[TokenClaims, Depends(require_admin)]
UserClaims = Annotated[TokenClaims, Depends(require_user)]
