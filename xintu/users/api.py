"""Login (WeChat mini-program, official-account OAuth, guest) and ``GET /me``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.billing.credits import get_balance
from xintu.deps import LimitsDep, SessionDep, SettingsDep, UserClaims, get_token_claims
from xintu.errors import NotAuthenticated, RateLimited, responses
from xintu.users import service
from xintu.users.accounts import AccountStatus
from xintu.users.crypto import DataCipher
from xintu.users.schemas import GuestLoginRequest, MeOut, TokenOut, WechatLoginRequest
from xintu.users.security import TokenClaims
from xintu.users.wechat import WECHAT_ERRORS, WechatClient

router = APIRouter(tags=["users"])


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.db.sessionmaker
    return sessionmaker


async def _wechat(request: Request) -> WechatClient:
    client: WechatClient = request.app.state.wechat
    return client


async def _cipher(request: Request) -> DataCipher:
    cipher: DataCipher = request.app.state.data_cipher
    return cipher


SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
# An optional bearer token on a login: a guest's own token, the only proof that the caller
# is that guest (to merge it into the WeChat account, or to renew it).
OptionalClaims = Annotated[TokenClaims | None, Depends(get_token_claims)]
WechatDep = Annotated[WechatClient, Depends(_wechat)]
CipherDep = Annotated[DataCipher, Depends(_cipher)]


def _user_id(claims: TokenClaims | None) -> int | None:
    return claims.subject_id if claims is not None and claims.kind == "user" else None


def _token_out(request: Request, result: service.LoginResult) -> TokenOut:
    accounts: AccountStatus = request.app.state.accounts
    accounts.forget_users(*result.merged_guest_ids)
    return TokenOut.model_validate(
        {
            "access_token": result.access_token,
            "expires_in": result.expires_in,
            "user": service.user_summary(result.user, result.balance),
            "created": result.created,
            "merged_guest_ids": result.merged_guest_ids,
        }
    )


@router.post("/auth/wechat/login", responses=responses(*WECHAT_ERRORS, RateLimited))
async def wechat_login(
    request: Request,
    body: WechatLoginRequest,
    claims: OptionalClaims,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    wechat: WechatDep,
    cipher: CipherDep,
    limits: LimitsDep,
) -> TokenOut:
    """Mini-program login: exchange the ``wx.login`` code for a user token. With a guest's
    own token in ``Authorization`` that guest is merged into the account."""
    await limits.per_ip("wechat_login")
    result = await service.login_miniprogram(
        sessionmaker, wechat, cipher, settings, body.code, body.device_id, _user_id(claims)
    )
    return _token_out(request, result)


@router.get("/auth/wechat/oauth", responses=responses(*WECHAT_ERRORS, RateLimited))
async def wechat_oauth(
    request: Request,
    claims: OptionalClaims,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    wechat: WechatDep,
    limits: LimitsDep,
    code: Annotated[str, Query(min_length=1, max_length=128)],
    device_id: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> TokenOut:
    """Official-account web OAuth: exchange the redirect's ``code`` for a user token."""
    await limits.per_ip("wechat_login")
    result = await service.login_oauth(
        sessionmaker, wechat, settings, code, device_id, _user_id(claims)
    )
    return _token_out(request, result)


@router.post("/auth/guest", responses=responses(service.GuestLoginDisabled, RateLimited))
async def guest_login(
    request: Request,
    body: GuestLoginRequest,
    claims: OptionalClaims,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    limits: LimitsDep,
) -> TokenOut:
    """A new guest labelled with the device id; with the guest's own token, that guest's
    token renewed. Merged into a WeChat account only by a login that carries its token."""
    await limits.per_ip("guest_login")
    result = await service.login_guest(sessionmaker, settings, body.device_id, _user_id(claims))
    return _token_out(request, result)


@router.get("/me", responses=responses(NotAuthenticated))
async def me(claims: UserClaims, session: SessionDep) -> MeOut:
    """The calling user: profile, membership and credit balance."""
    user = await service.resolve_user(session, claims.subject_id)
    balance = await get_balance(session, user.id)
    return MeOut.model_validate(service.user_summary(user, balance))
