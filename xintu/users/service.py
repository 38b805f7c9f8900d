"""Users: WeChat and guest logins, merging a guest into a WeChat account, tokens.

Each login runs in one transaction of its own (``sessionmaker.begin()``) so that the token
handed out always refers to committed rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.billing.credits import change_credits, get_balance
from xintu.config import Settings
from xintu.errors import AppError, NotAuthenticated
from xintu.models import ImageEditTask, PaymentRecord, RequestLog, UserCredits, WechatUser
from xintu.models.base import utcnow
from xintu.users.crypto import DataCipher
from xintu.users.security import create_access_token
from xintu.users.wechat import WechatClient

SESSION_KEY_PURPOSE = "wechat_users.session_key"


class GuestLoginDisabled(AppError):
    status_code = 403
    code = "guest_login_disabled"
    detail = "Guest login is disabled on this server"


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: WechatUser
    balance: int
    access_token: str
    expires_in: int
    created: bool
    merged_guest_ids: list[int]


def user_summary(user: WechatUser, balance: int) -> dict[str, Any]:
    """The public view of a user (DESIGN §4.3 ``GET /me``); never any secret."""
    return {
        "id": user.id,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "is_guest": user.is_guest,
        "is_member": is_active_member(user.member_until),
        "member_until": user.member_until,
        "credits": balance,
    }


def is_active_member(member_until: datetime | None) -> bool:
    return member_until is not None and member_until > utcnow()


async def resolve_user(session: AsyncSession, user_id: int) -> WechatUser:
    """The account a token names: it must exist, be active and not be merged. A token is
    never followed to another account (a merged guest's tokens stop working)."""
    user = await session.get(WechatUser, user_id, populate_existing=True)
    if user is None or not user.is_active or user.merged_into_id is not None:
        raise NotAuthenticated("This account no longer exists or is disabled")
    return user


_T = TypeVar("_T")
_ATTEMPTS = 3


async def _with_retry(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Run a login transaction again after a unique-key race or a deadlock (MySQL)."""
    for number in range(1, _ATTEMPTS + 1):
        try:
            return await attempt()
        except (IntegrityError, OperationalError):
            if number == _ATTEMPTS:
                raise
            logger.info("login transaction raced with another; retrying")
    raise AssertionError("unreachable")


async def login_miniprogram(
    sessionmaker: async_sessionmaker[AsyncSession],
    wechat: WechatClient,
    cipher: DataCipher,
    settings: Settings,
    code: str,
    device_id: str | None,
    guest_id: int | None,
) -> LoginResult:
    """Mini-program login: ``jscode2session``, then create or update the user; the guest
    whose own token came with the request (``guest_id``) is merged into it."""
    wechat_session = await wechat.code_to_session(code)

    async def attempt() -> LoginResult:
        async with sessionmaker.begin() as session:
            user, created = await _get_or_create(
                session, "openid", wechat_session.openid, wechat_session.unionid
            )
            user.session_key_encrypted = cipher.encrypt(
                wechat_session.session_key, SESSION_KEY_PURPOSE
            )
            return await _finish_wechat_login(session, settings, user, created, device_id, guest_id)

    return await _with_retry(attempt)


async def login_oauth(
    sessionmaker: async_sessionmaker[AsyncSession],
    wechat: WechatClient,
    settings: Settings,
    code: str,
    device_id: str | None,
    guest_id: int | None,
) -> LoginResult:
    """Official-account web OAuth login (merges ``guest_id`` like the mini-program login)."""
    profile = await wechat.oauth_profile(code)

    async def attempt() -> LoginResult:
        async with sessionmaker.begin() as session:
            user, created = await _get_or_create(
                session, "mp_openid", profile.openid, profile.unionid
            )
            if profile.nickname:
                user.nickname = profile.nickname
            if profile.avatar_url:
                user.avatar_url = profile.avatar_url
            return await _finish_wechat_login(session, settings, user, created, device_id, guest_id)

    return await _with_retry(attempt)


async def login_guest(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    device_id: str,
    guest_id: int | None,
) -> LoginResult:
    """A guest account labelled with a device id. The device id proves nothing (anyone can
    send any id): an existing guest is only handed out again to the holder of its own token
    (``guest_id``, to renew it); every other call creates a new guest."""
    if not settings.guest_login:
        raise GuestLoginDisabled()
    async with sessionmaker.begin() as session:
        guest = None
        if guest_id is not None:
            guest = await session.scalar(
                select(WechatUser).where(
                    WechatUser.id == guest_id,
                    WechatUser.is_guest.is_(True),
                    WechatUser.merged_into_id.is_(None),
                    WechatUser.is_active.is_(True),
                )
            )
        created = guest is None
        if guest is None:
            guest = WechatUser(device_id=device_id, is_guest=True, nickname="游客")
            session.add(guest)
            await session.flush()
            if settings.guest_welcome_credits:
                await change_credits(
                    session,
                    guest.id,
                    settings.guest_welcome_credits,
                    kind="grant",
                    reason="welcome (guest)",
                    reference=f"welcome:{guest.id}",
                )
        guest.last_login_at = utcnow()
        return await _result(session, settings, guest, created, [])


async def _get_or_create(
    session: AsyncSession, column: str, openid: str, unionid: str | None
) -> tuple[WechatUser, bool]:
    attribute = getattr(WechatUser, column)
    user = await session.scalar(select(WechatUser).where(attribute == openid))
    if user is not None:
        if unionid and not user.unionid:
            user.unionid = unionid
        return user, False
    # Two first logins of one account at once: the unique openid fails one of them at flush
    # and its whole transaction is retried by ``_with_retry`` (then it finds the row).
    user = WechatUser(**{column: openid}, unionid=unionid, nickname="微信用户")
    session.add(user)
    await session.flush()
    return user, True


async def _finish_wechat_login(
    session: AsyncSession,
    settings: Settings,
    user: WechatUser,
    created: bool,
    device_id: str | None,
    guest_id: int | None,
) -> LoginResult:
    if not user.is_active or user.merged_into_id is not None:
        raise NotAuthenticated("This account is disabled")
    user.last_login_at = utcnow()
    if device_id:
        user.device_id = device_id
    await session.flush()
    if created and settings.welcome_credits:
        await change_credits(
            session,
            user.id,
            settings.welcome_credits,
            kind="grant",
            reason="welcome",
            reference=f"welcome:{user.id}",
        )
    merged = await merge_guest(session, user, guest_id) if guest_id is not None else []
    return await _result(session, settings, user, created, merged)


async def merge_guest(session: AsyncSession, target: WechatUser, guest_id: int) -> list[int]:
    """Move the guest ``guest_id`` into ``target``: its credits (as paired ledger entries),
    membership, orders, edit tasks and request history; nothing else. Returns ``[guest_id]``
    when merged, ``[]`` when there was nothing to merge. Runs in the caller's transaction;
    the guest is claimed by a conditional UPDATE, so it is merged exactly once, and only an
    active, unmerged guest can be claimed (never a WeChat account)."""
    if guest_id == target.id:
        return []
    claimed = await session.execute(
        update(WechatUser)
        .where(
            WechatUser.id == guest_id,
            WechatUser.is_guest.is_(True),
            WechatUser.is_active.is_(True),
            WechatUser.merged_into_id.is_(None),
        )
        .values(merged_into_id=target.id, is_active=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return []  # not a mergeable guest, or merged by a concurrent login
    guest = await session.get(WechatUser, guest_id, populate_existing=True)
    assert guest is not None
    # A locking read: the current balance, and no debit of the guest can slip in between.
    balance = int(
        await session.scalar(
            select(UserCredits.balance).where(UserCredits.user_id == guest_id).with_for_update()
        )
        or 0
    )
    if balance > 0:
        reference = f"merge:{guest_id}"
        await change_credits(
            session,
            guest_id,
            -balance,
            kind="merge_out",
            reason=f"merged into user {target.id}",
            reference=reference,
        )
        await change_credits(
            session,
            target.id,
            balance,
            kind="merge_in",
            reason=f"merged from guest {guest_id}",
            reference=reference,
        )
    if guest.member_until is not None and (
        target.member_until is None or guest.member_until > target.member_until
    ):
        target.member_until = guest.member_until
    await session.execute(
        update(PaymentRecord).where(PaymentRecord.user_id == guest_id).values(user_id=target.id)
    )
    await session.execute(
        update(ImageEditTask).where(ImageEditTask.user_id == guest_id).values(user_id=target.id)
    )
    await session.execute(
        update(RequestLog)
        .where(RequestLog.user_id == f"user:{guest_id}")
        .values(user_id=f"user:{target.id}")
    )
    logger.info("merged guest {} into user {} ({} credits)", guest_id, target.id, balance)
    return [guest_id]


async def _result(
    session: AsyncSession,
    settings: Settings,
    user: WechatUser,
    created: bool,
    merged: list[int],
) -> LoginResult:
    await session.flush()
    expires_in = timedelta(minutes=settings.access_token_expire_minutes)
    token = create_access_token(
        "user", user.id, settings.jwt_secret or "", expires_in, guest=user.is_guest
    )
    balance = await get_balance(session, user.id)
    return LoginResult(user, balance, token, int(expires_in.total_seconds()), created, merged)
