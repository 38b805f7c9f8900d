"""Billing's ``CreditGate`` for classification (DESIGN §7)."""

from __future__ import annotations

import hashlib

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.billing.credits import (
    DuplicateLedgerEntry,
    InsufficientCredits,
    change_credits,
    get_balance,
)
from xintu.deps import Caller
from xintu.errors import NotAuthenticated
from xintu.users.service import is_active_member, resolve_user

REMOTE_CLASSIFICATION_COST = 1
_MAX_REFERENCE = 80


def ledger_reference(reference: str) -> str:
    """References longer than the ledger column are replaced by their SHA-256."""
    if len(reference) <= _MAX_REFERENCE:
        return reference
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


class BillingCreditGate:
    """Remote classification costs 1 credit unless the user is a member; anonymous callers
    and users without credits get cache and local answers only."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def may_use_remote(self, caller: Caller) -> bool:
        if caller.user_id is None:
            return False
        async with self._sessionmaker() as session:
            try:
                user = await resolve_user(session, caller.user_id)
            except NotAuthenticated:
                return False
            if is_active_member(user.member_until):
                return True
            return await get_balance(session, user.id) >= REMOTE_CLASSIFICATION_COST

    async def charge_remote(self, caller: Caller, reference: str) -> None:
        """Charge for a remote answer already given. Never raises: the answer is out, and a
        balance that reached 0 meanwhile is recorded as an unpaid entry in the ledger."""
        if caller.user_id is None:
            return
        key = ledger_reference(reference)
        try:
            async with self._sessionmaker.begin() as session:
                user = await resolve_user(session, caller.user_id)
                if is_active_member(user.member_until):
                    return
                await change_credits(
                    session,
                    user.id,
                    -REMOTE_CLASSIFICATION_COST,
                    kind="consume",
                    reason=f"remote classification {reference}"[:200],
                    reference=key,
                )
        except DuplicateLedgerEntry:
            return
        except InsufficientCredits:
            await self._record_unpaid(caller.user_id, reference, key)
        except Exception:  # noqa: BLE001 - billing must never fail an answered request
            logger.exception("charging user {} for {} failed", caller.user_id, reference)

    async def _record_unpaid(self, user_id: int, reference: str, key: str) -> None:
        logger.warning("user {} got a remote classification with no credit left", user_id)
        try:
            async with self._sessionmaker.begin() as session:
                user = await resolve_user(session, user_id)
                await change_credits(
                    session,
                    user.id,
                    0,
                    kind="consume_unpaid",
                    reason=f"remote classification after the balance reached 0: {reference}"[:200],
                    reference=key,
                )
        except Exception:  # noqa: BLE001
            logger.exception("recording the unpaid classification of user {} failed", user_id)
