"""Credit balances and the append-only ledger; the one place balances change.

Every change is a conditional UPDATE (``balance >= cost`` for a debit), so concurrent
requests can never drive a balance negative on any database, plus a ledger row in the
same transaction. ``(kind, reference)`` is unique in the ledger: replaying the same
grant or charge fails with ``DuplicateLedgerEntry`` and the caller's transaction rolls
back, which makes callbacks and retries idempotent.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xintu.db import insert_ignoring_duplicates
from xintu.errors import AppError
from xintu.models import CreditLedger, UserCredits, WechatUser
from xintu.models.base import utcnow

_CREDITS = cast(Table, UserCredits.__table__)


class InsufficientCredits(AppError):
    status_code = 402
    code = "insufficient_credits"
    detail = "Not enough credits"


class DuplicateLedgerEntry(Exception):
    """A ledger entry with this (kind, reference) exists: the change was already made."""


async def get_balance(session: AsyncSession, user_id: int) -> int:
    balance = await session.scalar(
        select(UserCredits.balance).where(UserCredits.user_id == user_id)
    )
    return int(balance or 0)


async def is_member(session: AsyncSession, user_id: int) -> bool:
    member_until = await session.scalar(
        select(WechatUser.member_until).where(WechatUser.id == user_id)
    )
    return member_until is not None and member_until > utcnow()


async def change_credits(
    session: AsyncSession,
    user_id: int,
    delta: int,
    *,
    kind: str,
    reason: str,
    reference: str | None,
) -> int:
    """Add ``delta`` (negative to spend) and record it; returns the new balance.

    Raises ``InsufficientCredits`` when a debit exceeds the balance and
    ``DuplicateLedgerEntry`` when ``(kind, reference)`` was recorded before; neither
    changes anything. Runs in the caller's transaction: the caller commits. Two
    concurrent calls with the same reference both pass the duplicate check, and the
    ledger's unique key fails the second one's flush: its transaction must roll back.
    """
    if reference is not None:
        existing = await session.scalar(
            select(CreditLedger.id).where(
                CreditLedger.kind == kind, CreditLedger.reference == reference
            )
        )
        if existing is not None:
            raise DuplicateLedgerEntry(f"{kind} {reference} is already recorded")
    await session.execute(
        insert_ignoring_duplicates(
            session.get_bind().dialect.name,
            _CREDITS,
            {"user_id": user_id, "balance": 0, "updated_at": utcnow()},
            ["user_id"],
        )
    )
    statement = (
        update(UserCredits)
        .where(UserCredits.user_id == user_id)
        .values(balance=UserCredits.balance + delta, updated_at=utcnow())
    )
    if delta < 0:
        statement = statement.where(UserCredits.balance >= -delta)
    result = await session.execute(statement)
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise InsufficientCredits(f"This needs {-delta} credits")
    balance_after = await get_balance(session, user_id)
    session.add(
        CreditLedger(
            user_id=user_id,
            kind=kind,
            delta=delta,
            balance_after=balance_after,
            reason=reason,
            reference=reference,
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        raise DuplicateLedgerEntry(f"{kind} {reference} is already recorded") from exc
    return balance_after
