"""Annotated dependency aliases: routes declare what they need by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from xintu.clientip import client_ip, ip_caller_key
from xintu.config import Settings
from xintu.db import get_session
from xintu.errors import Forbidden, NotAuthenticated
from xintu.labels import MAX_LABEL_CHARS, label_problem
from xintu.ratelimit import RateLimiter
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
    def key(self) -> str:
        """Who counts as a distinct caller (DESIGN §3) for the cache quorum and every
        per-caller limit: a WeChat-verified user is itself; a guest account, a label and
        an anonymous caller are their IP address, because those identities are free."""
        token = self.token
        if token is not None and token.kind == "user" and not token.guest:
            return f"user:{token.subject_id}"
        return ip_caller_key(self.ip)

    @property
    def log_user_id(self) -> str | None:
        """What request_log records as ``user_id``: the account, never a client's label
        (labels go to ``client_label``, so one can never pose as a user in statistics)."""
        user_id = self.user_id
        return f"user:{user_id}" if user_id is not None else None


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
    return Caller(
        ip=client_ip(request),
        token=claims,
        label=_header_label(label) if label is not None else None,
    )


def client_label(value: str | None) -> str | None:
    """A client's self-chosen label (``X-User-ID`` or a body ``user_id``), trimmed; it
    identifies nothing and is kept apart from user ids."""
    if value is None:
        return None
    return value.strip()[:MAX_LABEL_CHARS] or None


async def get_client_ip(request: Request) -> str:
    return client_ip(request)


class Limits:
    """The app's rate limiter bound to this request's caller."""

    def __init__(self, request: Request) -> None:
        self._limiter: RateLimiter = request.app.state.rate_limiter
        self._request = request

    async def per_ip(self, scope: str) -> None:
        """Count a request of a caller who has no identity yet (logins) against its IP."""
        await self._limiter.hit(scope, ip_caller_key(client_ip(self._request)))

    async def per_caller(self, scope: str, claims: TokenClaims | None) -> None:
        """Count a request against its caller key (DESIGN §3: a WeChat user, else the IP)."""
        caller = Caller(ip=client_ip(self._request), token=claims, label=None)
        await self._limiter.hit(scope, caller.key)


async def get_limits(request: Request) -> Limits:
    return Limits(request)


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
ClientIP = Annotated[str, Depends(get_client_ip)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
AdminClaims = Annotated[TokenClaims, Depends(require_admin)]
UserClaims = Annotated[TokenClaims, Depends(require_user)]
