"""Admin accounts: Argon2id password hashes, login, and the start-up bootstrap."""

from __future__ import annotations

import asyncio
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from xintu.db import insert_ignoring_duplicates
from xintu.errors import AppError
from xintu.models import AdminUser
from xintu.models.base import utcnow
from xintu.users.security import hash_password, verify_password

_ADMINS = cast(Table, AdminUser.__table__)
MIN_PASSWORD_LENGTH = 8


class InvalidCredentials(AppError):
    status_code = 401
    code = "invalid_credentials"
    detail = "Wrong username or password"


class WeakPassword(AppError):
    status_code = 422
    code = "weak_password"
    detail = f"An admin password needs at least {MIN_PASSWORD_LENGTH} characters"


async def authenticate(session: AsyncSession, username: str, password: str) -> AdminUser:
    """The active admin with these credentials (last login stamped), else 401."""
    admin = await session.scalar(select(AdminUser).where(AdminUser.username == username))
    stored = admin.password_hash if admin is not None and admin.is_active else None
    if not await asyncio.to_thread(verify_password, password, stored) or admin is None:
        raise InvalidCredentials()
    admin.last_login_at = utcnow()
    return admin


async def create_or_update_admin(engine: AsyncEngine, username: str, password: str) -> bool:
    """Make ``username`` an active admin with ``password``; True when the row was created.

    Safe when several workers start at once: the insert ignores a duplicate username and the
    update after it is idempotent. An unchanged password keeps its hash.
    """
    username = username.strip()
    if not username:
        raise AppError("The admin username must not be empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword()
    async with engine.begin() as connection:
        row = (
            await connection.execute(
                select(_ADMINS.c.id, _ADMINS.c.password_hash, _ADMINS.c.is_active).where(
                    _ADMINS.c.username == username
                )
            )
        ).first()
        if row is not None and row.is_active:
            if await asyncio.to_thread(verify_password, password, row.password_hash):
                return False
        password_hash = await asyncio.to_thread(hash_password, password)
        if row is None:
            await connection.execute(
                insert_ignoring_duplicates(
                    connection.dialect.name,
                    _ADMINS,
                    {
                        "username": username,
                        "password_hash": password_hash,
                        "is_active": True,
                        "created_at": utcnow(),
                    },
                    ["username"],
                )
            )
            return True
        await connection.execute(
            update(_ADMINS)
            .where(_ADMINS.c.username == username)
            .values(password_hash=password_hash, is_active=True)
        )
        return False
