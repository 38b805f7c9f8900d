"""Whether the account a token names may still act: exists, active, not merged.

A token is valid for days; disabling an account or merging a guest must take effect at
once. Every admin request and every user request that touches money or files asks here.
Answers are kept for ``XINTU_ACCOUNT_STATUS_TTL_S`` seconds so the check costs one dict
lookup on the hot path; this process forgets an account as soon as it changes it, other
processes notice within the TTL.
"""

from __future__ import annotations

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.errors import NotAuthenticated
from xintu.models import AdminUser, WechatUser

_ENTRIES = 100_000


class AccountStatus:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl_s: float) -> None:
        self._sessionmaker = sessionmaker
        self._ttl_s = ttl_s
        self._users: TTLCache[int, bool] = TTLCache(_ENTRIES, max(ttl_s, 0.001))
        self._admins: TTLCache[int, bool] = TTLCache(_ENTRIES, max(ttl_s, 0.001))

    async def require_user(self, user_id: int) -> None:
        """401 unless the app user exists, is active and was not merged into another."""
        usable = self._users.get(user_id) if self._ttl_s > 0 else None
        if usable is None:
            async with self._sessionmaker() as session:
                row = (
                    await session.execute(
                        select(WechatUser.is_active, WechatUser.merged_into_id).where(
                            WechatUser.id == user_id
                        )
                    )
                ).first()
            usable = row is not None and bool(row.is_active) and row.merged_into_id is None
            self._users[user_id] = usable
        if not usable:
            raise NotAuthenticated("This account no longer exists or is disabled")

    async def require_admin(self, admin_id: int) -> None:
        """401 unless the admin exists and is active."""
        usable = self._admins.get(admin_id) if self._ttl_s > 0 else None
        if usable is None:
            async with self._sessionmaker() as session:
                active = await session.scalar(
                    select(AdminUser.is_active).where(AdminUser.id == admin_id)
                )
            usable = bool(active)
            self._admins[admin_id] = usable
        if not usable:
            raise NotAuthenticated("This admin account no longer exists or is disabled")

    def forget_users(self, *user_ids: int) -> None:
        """Called after this process disabled or merged accounts (once committed)."""
        for user_id in user_ids:
            self._users.pop(user_id, None)

    def forget_admin(self, admin_id: int) -> None:
        self._admins.pop(admin_id, None)
