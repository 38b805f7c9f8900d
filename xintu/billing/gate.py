"""Billing's ``CreditGate`` for classification (DESIGN §7): reserve, then call, then keep or
give back.

A remote classification costs 1 credit unless the user is a member. The credit is debited
*before* the provider is called (a conditional UPDATE that never takes a balance below 0),
so concurrent requests and batches can never get more paid answers than there were
credits. If no paid remote answer comes of it (every provider failed, the local fallback
answered, the request was cancelled) the credit is given back. The ledger reference is
made here, by the server: nothing the client sends decides whether something is paid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.billing.credits import DuplicateLedgerEntry, InsufficientCredits, change_credits
from xintu.deps import Caller
from xintu.errors import NotAuthenticated
from xintu.users.service import is_active_member, resolve_user

REMOTE_CLASSIFICATION_COST = 1


@dataclass(frozen=True, slots=True)
class Reservation:
    """Permission for one remote call. ``reference`` is None for members (nothing debited)."""

    user_id: int
    reference: str | None


class BillingCreditGate:
    """Anonymous callers, disabled accounts and users without credits get no reservation:
    they are answered from the cache or by the local pipeline."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def reserve_remote(self, caller: Caller, note: str) -> Reservation | None:
        """Debit the cost of one remote call now, or None when the caller may not have one."""
        if caller.user_id is None:
            return None
        reference = f"remote:{uuid.uuid4().hex}"
        try:
            async with self._sessionmaker.begin() as session:
                user = await resolve_user(session, caller.user_id)
                if is_active_member(user.member_until):
                    return Reservation(user.id, None)
                await change_credits(
                    session,
                    user.id,
                    -REMOTE_CLASSIFICATION_COST,
                    kind="consume",
                    reason=f"remote classification ({note})"[:200],
                    reference=reference,
                )
                return Reservation(user.id, reference)
        except (NotAuthenticated, InsufficientCredits):
            return None
        except Exception:  # noqa: BLE001 - billing unreachable: degrade to cache and local
            logger.exception("reserving a credit for user {} failed", caller.user_id)
            return None

    async def release(self, reservation: Reservation, why: str) -> None:
        """Give a reserved credit back: no paid remote answer came of it. Never raises (the
        caller is already answering or failing for its own reason); at most once."""
        if reservation.reference is None:
            return
        try:
            async with self._sessionmaker.begin() as session:
                await change_credits(
                    session,
                    reservation.user_id,
                    REMOTE_CLASSIFICATION_COST,
                    kind="release",
                    reason=f"remote classification not used: {why}"[:200],
                    reference=reservation.reference,
                )
        except DuplicateLedgerEntry:
            return
        except Exception:  # noqa: BLE001 - logged; the ledger shows the unreleased reservation
            logger.exception(
                "releasing reservation {} of user {} failed",
                reservation.reference,
                reservation.user_id,
            )
