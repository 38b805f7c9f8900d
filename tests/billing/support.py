"""Helpers shared by the billing tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from xintu.billing.credits import change_credits, get_balance
from xintu.models import AdminUser, CreditLedger, PaymentRecord, WechatUser
from xintu.users.security import create_access_token


async def make_user(
    app: FastAPI,
    *,
    openid: str | None = "o_buyer",
    credits: int = 0,
    member_until: datetime | None = None,
    guest: bool = False,
) -> tuple[int, dict[str, str]]:
    """A user row (with a starting balance) and the headers of its bearer token."""
    async with app.state.db.sessionmaker.begin() as session:
        user = WechatUser(
            openid=openid, is_guest=guest, nickname="tester", member_until=member_until
        )
        session.add(user)
        await session.flush()
        if credits:
            await change_credits(
                session, user.id, credits, kind="grant", reason="test", reference=f"t:{user.id}"
            )
        user_id = user.id
    token = create_access_token(
        "user", user_id, app.state.settings.jwt_secret, timedelta(minutes=10)
    )
    return user_id, {"Authorization": f"Bearer {token}"}


async def admin_headers(app: FastAPI, username: str = "ops") -> dict[str, str]:
    """The bearer token of an active admin (created on first use)."""
    async with app.state.db.sessionmaker.begin() as session:
        admin = await session.scalar(select(AdminUser).where(AdminUser.username == username))
        if admin is None:
            admin = AdminUser(username=username, password_hash="-", is_active=True)
            session.add(admin)
            await session.flush()
        admin_id = admin.id
    token = create_access_token(
        "admin", admin_id, app.state.settings.jwt_secret, timedelta(minutes=10)
    )
    return {"Authorization": f"Bearer {token}"}


async def balance(app: FastAPI, user_id: int) -> int:
    async with app.state.db.sessionmaker() as session:
        return await get_balance(session, user_id)


async def ledger(app: FastAPI, user_id: int) -> list[tuple[str, int, int]]:
    """(kind, delta, balance_after) of the user's ledger, oldest first."""
    async with app.state.db.sessionmaker() as session:
        rows = await session.execute(
            select(CreditLedger.kind, CreditLedger.delta, CreditLedger.balance_after)
            .where(CreditLedger.user_id == user_id)
            .order_by(CreditLedger.id)
        )
        return [(kind, delta, after) for kind, delta, after in rows.all()]


async def order_row(app: FastAPI, out_trade_no: str) -> PaymentRecord:
    async with app.state.db.sessionmaker() as session:
        order = await session.scalar(
            select(PaymentRecord).where(PaymentRecord.out_trade_no == out_trade_no)
        )
        assert order is not None
        return order


async def member_until(app: FastAPI, user_id: int) -> datetime | None:
    async with app.state.db.sessionmaker() as session:
        user = await session.get(WechatUser, user_id)
        assert user is not None
        return user.member_until


async def ledger_count(app: FastAPI) -> int:
    async with app.state.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(CreditLedger)) or 0)
