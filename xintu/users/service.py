"""Users: WeChat and guest logins, merging a device's guest into its WeChat account, tokens.

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
# A merged guest's tokens keep working: they are followed to the account they went into.
_MAX_MERGE_HOPS = 4


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
    """The account a token's subject stands for now (merged guests lead to their account)."""
    for _ in range(_MAX_MERGE_HOPS):
        user = await session.get(WechatUser, user_id, populate_existing=True)
        if user is None:
            break
        if user.merged_into_id is None:
            if not user.is_active:
                break
            return user
        user_id = user.merged_into_id
    raise NotAuthenticated("This account no longer exists or is disabled")


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
) -> LoginResult:
    """Mini-program login: ``jscode2session``, then create or update the user."""
    wechat_session = await wechat.code_to_session(code)

    async def attempt() -> LoginResult:
        async with sessionmaker.begin() as session:
            user, created = await _get_or_create(
                session, "openid", wechat_session.openid, wechat_session.unionid
            )
            user.session_key_encrypted = cipher.encrypt(
                wechat_session.session_key, SESSION_KEY_PURPOSE
            )
            return await _finish_wechat_login(session, settings, user, created, device_id)

    return await _with_retry(attempt)


async def login_oauth(
    sessionmaker: async_sessionmaker[AsyncSession],
    wechat: WechatClient,
    settings: Settings,
    code: str,
    device_id: str | None,
) -> LoginResult:
    """Official-account web OAuth login."""
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
            return await _finish_wechat_login(session, settings, user, created, device_id)

    return await _with_retry(attempt)


async def login_guest(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, device_id: str
) -> LoginResult:
    """A guest account bound to a device id (the device id is the guest's credential)."""
    if not settings.guest_login:
        raise GuestLoginDisabled()
    async with sessionmaker.begin() as session:
        guest = await session.scalar(
            select(WechatUser)
            .where(
                WechatUser.device_id == device_id,
                WechatUser.is_guest.is_(True),
                WechatUser.merged_into_id.is_(None),
                WechatUser.is_active.is_(True),
            )
            .order_by(WechatUser.id)
            .limit(1)
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
) -> LoginResult:
    if not user.is_active:
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
    merged = await merge_device_guests(session, user, device_id) if device_id else []
    return await _result(session, settings, user, created, merged)


async def merge_device_guests(
    session: AsyncSession, target: WechatUser, device_id: str
) -> list[int]:
    """Move every unmerged guest of this device into ``target``: credits (as paired ledger
    entries), membership, orders, edit tasks and request history. Runs in the caller's
    transaction; a guest is claimed by a conditional UPDATE so it is merged exactly once."""
    guest_ids = list(
        (
            await session.scalars(
                select(WechatUser.id).where(
                    WechatUser.device_id == device_id,
                    WechatUser.is_guest.is_(True),
                    WechatUser.merged_into_id.is_(None),
                    WechatUser.id != target.id,
                )
            )
        ).all()
    )
    merged: list[int] = []
    for guest_id in guest_ids:
        claimed = await session.execute(
            update(WechatUser)
            .where(WechatUser.id == guest_id, WechatUser.merged_into_id.is_(None))
            .values(merged_into_id=target.id, is_active=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # merged by a concurrent login
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
        merged.append(guest_id)
        logger.info("merged guest {} into user {} ({} credits)", guest_id, target.id, balance)
    return merged


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
