"""Products, orders, WeChat Pay callbacks, closing of expired orders and refunds.

Money paths own their transactions (``sessionmaker.begin()``) instead of using the
request-scoped session: WeChat Pay must only hear "success" once the grant is committed,
and an order must be committed before WeChat Pay can call back about it.

Exactly once: an order becomes ``paid`` through one conditional UPDATE (``WHERE status
IN (pending, closed, failed)``); only the transaction whose UPDATE changed the row grants,
in the same transaction, and the ledger's unique ``(kind, reference)`` is a second guard.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xintu.billing.credits import DuplicateLedgerEntry, change_credits, get_balance
from xintu.billing.wechatpay import (
    CHINA,
    CallbackRejected,
    PaymentUnavailable,
    WechatPay,
    WechatPayError,
)
from xintu.config import Product, Settings
from xintu.errors import AppError, NotFound
from xintu.models import CreditLedger, PaymentRecord, WechatUser
from xintu.models.base import utcnow
from xintu.users.service import is_active_member, resolve_user

# Where a paid order may come from: a late payment of an order we already closed locally
# (or whose prepay we gave up on) is still money received and is still granted.
_PAYABLE = ("pending", "closed", "failed")
_CLOSED_TRADE_STATES = {"CLOSED", "REVOKED", "PAYERROR"}


class UnknownProduct(AppError):
    status_code = 404
    code = "unknown_product"
    detail = "No such product"


class OpenidRequired(AppError):
    status_code = 409
    code = "openid_required"
    detail = "JSAPI payment needs a WeChat login (openid); guests can pay by QR code (native)"


class TooManyPendingOrders(AppError):
    status_code = 429
    code = "too_many_pending_orders"
    detail = "Too many unpaid orders; pay or wait for one to expire first"


class OrderNotFound(NotFound):
    code = "order_not_found"
    detail = "No such order"


class OrderNotRefundable(AppError):
    status_code = 409
    code = "order_not_refundable"
    detail = "Only paid orders can be refunded"


class CreditsAlreadySpent(AppError):
    status_code = 409
    code = "credits_already_spent"
    detail = "The user has already spent credits of this order; pass force=true to refund anyway"


@dataclass(slots=True)
class Billing:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    wechatpay: WechatPay | None

    def product(self, product_id: str) -> Product:
        for product in self.settings.billing_products:
            if product.id == product_id:
                return product
        raise UnknownProduct(f"No product {product_id!r}")

    def require_wechatpay(self) -> WechatPay:
        if self.wechatpay is None:
            raise PaymentUnavailable("WeChat Pay is not configured on this server")
        return self.wechatpay


def order_view(order: PaymentRecord) -> dict[str, Any]:
    return {
        "out_trade_no": order.out_trade_no,
        "product_id": order.product_id,
        "trade_type": order.trade_type,
        "amount_fen": order.amount_fen,
        "currency": order.currency,
        "status": order.status,
        "code_url": order.code_url,
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "paid_at": order.paid_at,
        "refunded_fen": order.refunded_fen,
        "refund_status": order.refund_status,
    }


def _new_out_trade_no() -> str:
    # 28 characters of [0-9A-Za-z] (WeChat allows 6-32): time for humans, randomness for
    # uniqueness and unguessability.
    return "XT" + utcnow().astimezone(CHINA).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)


# -- orders ---------------------------------------------------------------------------------


async def create_order(
    billing: Billing, user_id: int, product_id: str, trade_type: str
) -> dict[str, Any]:
    """Create an order and its WeChat Pay prepay; JSAPI answers ``pay_params``, Native
    ``code_url``. A failed prepay leaves the order ``failed``, never a fake success."""
    product = billing.product(product_id)
    wechatpay = billing.require_wechatpay()
    async with billing.sessionmaker.begin() as session:
        await _lock_user_orders(session, user_id)
        user = await resolve_user(session, user_id)
        pending = await session.scalar(
            select(func.count())
            .select_from(PaymentRecord)
            .where(PaymentRecord.user_id == user.id, PaymentRecord.status == "pending")
        )
        limit = billing.settings.max_pending_orders_per_user
        if (pending or 0) >= limit:
            raise TooManyPendingOrders(f"At most {limit} unpaid orders per user")
        openid: str | None = None
        appid = wechatpay.appid
        if trade_type == "jsapi":
            if user.openid:
                openid = user.openid
            elif user.mp_openid:
                openid, appid = user.mp_openid, billing.settings.wechat_mp_appid or appid
            else:
                raise OpenidRequired()
        order = PaymentRecord(
            out_trade_no=_new_out_trade_no(),
            user_id=user.id,
            product_id=product.id,
            trade_type=trade_type,
            amount_fen=product.amount_fen,
            currency="CNY",
            status="pending",
            expires_at=utcnow() + timedelta(minutes=billing.settings.order_expire_minutes),
        )
        session.add(order)
    assert order.expires_at is not None
    try:
        value = await wechatpay.prepay(
            trade_type,
            appid=appid,
            description=product.name,
            out_trade_no=order.out_trade_no,
            amount_fen=order.amount_fen,
            expires_at=order.expires_at,
            openid=openid,
        )
    except (WechatPayError, PaymentUnavailable):
        async with billing.sessionmaker.begin() as session:
            await session.execute(
                update(PaymentRecord)
                .where(PaymentRecord.id == order.id, PaymentRecord.status == "pending")
                .values(status="failed", updated_at=utcnow())
            )
        raise
    async with billing.sessionmaker.begin() as session:
        values = {"prepay_id": value} if trade_type == "jsapi" else {"code_url": value}
        await session.execute(
            update(PaymentRecord).where(PaymentRecord.id == order.id).values(**values)
        )
    order.code_url = values.get("code_url")
    view = order_view(order)
    if trade_type == "jsapi":
        view["pay_params"] = wechatpay.pay_params(appid, value)
    return view


async def _lock_user_orders(session: AsyncSession, user_id: int) -> None:
    """Serialise one user's order creation until the transaction ends, so that concurrent
    requests count each other's pending orders: a no-op UPDATE of the user's row, the
    transaction's first statement (a row lock on MariaDB/PostgreSQL, the write lock on
    SQLite; on MariaDB the snapshot of the count after it starts after the lock)."""
    await session.execute(
        update(WechatUser)
        .where(WechatUser.id == user_id)
        .values(is_active=WechatUser.is_active)
        .execution_options(synchronize_session=False)
    )


async def get_order(billing: Billing, user_id: int, out_trade_no: str) -> dict[str, Any]:
    """The caller's own order; a pending one is first brought up to date from WeChat Pay."""
    async with billing.sessionmaker() as session:
        user = await resolve_user(session, user_id)
        order = await session.scalar(
            select(PaymentRecord).where(
                PaymentRecord.out_trade_no == out_trade_no, PaymentRecord.user_id == user.id
            )
        )
        if order is None:
            raise OrderNotFound()
    if order.status == "pending" and billing.wechatpay is not None:
        await sync_with_wechatpay(billing, order)
        async with billing.sessionmaker() as session:
            refreshed = await session.get(PaymentRecord, order.id)
            assert refreshed is not None
            order = refreshed
    return order_view(order)


async def sync_with_wechatpay(billing: Billing, order: PaymentRecord) -> str:
    """Ask WeChat Pay about a pending order and apply what it says; returns the state."""
    wechatpay = billing.require_wechatpay()
    try:
        transaction = await wechatpay.query(order.out_trade_no)
    except (WechatPayError, PaymentUnavailable) as exc:
        logger.warning("query of order {} failed: {}", order.out_trade_no, exc.detail)
        return "UNKNOWN"
    state = str(transaction.get("trade_state", ""))
    if state == "SUCCESS":
        try:
            await apply_transaction(billing, transaction)
        except CallbackRejected as exc:
            logger.error("order {} query answer rejected: {}", order.out_trade_no, exc)
    elif state in _CLOSED_TRADE_STATES:
        await _mark_closed(billing, order.id)
    return state


async def _mark_closed(billing: Billing, order_id: int) -> None:
    async with billing.sessionmaker.begin() as session:
        await session.execute(
            update(PaymentRecord)
            .where(PaymentRecord.id == order_id, PaymentRecord.status == "pending")
            .values(status="closed", updated_at=utcnow())
        )


# -- payment ---------------------------------------------------------------------------------


async def handle_notify(billing: Billing, headers: dict[str, str], body: bytes) -> str:
    """WeChat Pay's callback: verify, decrypt, check, apply once. Raises CallbackRejected."""
    if billing.wechatpay is None:
        raise CallbackRejected("WeChat Pay is not configured")
    billing.wechatpay.verify(headers, body)
    try:
        notification = json.loads(body)
        resource = notification["resource"]
        event_type = str(notification.get("event_type", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise CallbackRejected("the callback body is not a WeChat Pay notification") from exc
    if not isinstance(resource, dict):
        raise CallbackRejected("the callback's resource is not an object")
    decrypted = billing.wechatpay.decrypt_resource(resource)
    if event_type.startswith("REFUND."):
        return await apply_refund_notification(billing, decrypted)
    if event_type != "TRANSACTION.SUCCESS":
        logger.info("WeChat Pay event {} acknowledged", event_type[:40])
        return "ignored"
    return await apply_transaction(billing, decrypted)


async def apply_transaction(billing: Billing, transaction: dict[str, Any]) -> str:
    """Mark the order paid and grant its product, in one transaction, exactly once.

    Returns ``paid`` (this call granted), ``already_paid`` or ``not_paid``; raises
    CallbackRejected when the transaction does not match our order."""
    wechatpay = billing.require_wechatpay()
    out_trade_no = str(transaction.get("out_trade_no", ""))
    if transaction.get("mchid") != wechatpay.mchid:
        raise CallbackRejected(f"mchid does not match for order {out_trade_no[:32]!r}")
    if transaction.get("appid") not in wechatpay.appids:
        raise CallbackRejected(f"appid does not match for order {out_trade_no[:32]!r}")
    if transaction.get("trade_state") != "SUCCESS":
        return "not_paid"
    amount = transaction.get("amount")
    total = amount.get("total") if isinstance(amount, dict) else None
    currency = amount.get("currency", "CNY") if isinstance(amount, dict) else None
    transaction_id = str(transaction.get("transaction_id") or "")[:64] or None
    payer = transaction.get("payer")
    payer_openid = payer.get("openid") if isinstance(payer, dict) else None
    try:
        async with billing.sessionmaker.begin() as session:
            order = await session.scalar(
                select(PaymentRecord).where(PaymentRecord.out_trade_no == out_trade_no)
            )
            if order is None:
                raise CallbackRejected(f"unknown order {out_trade_no[:32]!r}")
            if total != order.amount_fen or currency != order.currency:
                logger.error(
                    "order {}: WeChat Pay reports {} {}, the order is {} {}",
                    out_trade_no,
                    total,
                    currency,
                    order.amount_fen,
                    order.currency,
                )
                raise CallbackRejected(f"amount does not match order {out_trade_no!r}")
            claimed = await session.execute(
                update(PaymentRecord)
                .where(PaymentRecord.id == order.id, PaymentRecord.status.in_(_PAYABLE))
                .values(
                    status="paid",
                    transaction_id=transaction_id,
                    payer_openid=str(payer_openid)[:64] if payer_openid else None,
                    paid_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return "already_paid"
            await _grant(session, billing, order)
    except DuplicateLedgerEntry:
        return "already_paid"
    except IntegrityError as exc:
        raise CallbackRejected(f"transaction id already used ({out_trade_no!r})") from exc
    logger.info("order {} paid ({} fen)", out_trade_no, total)
    return "paid"


async def _grant(session: AsyncSession, billing: Billing, order: PaymentRecord) -> None:
    try:
        product = billing.product(order.product_id)
    except UnknownProduct as exc:
        # Paid for a product no longer in the settings: refuse (WeChat Pay retries) and
        # leave the order unpaid here until an operator restores the product.
        logger.error("order {} paid for unknown product {}", order.out_trade_no, order.product_id)
        raise CallbackRejected(f"product {order.product_id!r} is not configured") from exc
    if product.kind == "credits":
        await change_credits(
            session,
            order.user_id,
            product.credits,
            kind="purchase",
            reason=f"bought {product.id}",
            reference=order.out_trade_no,
        )
        return
    user = await session.get(WechatUser, order.user_id, with_for_update=True)
    assert user is not None
    now = utcnow()
    start = user.member_until if is_active_member(user.member_until) else now
    assert start is not None
    user.member_until = start + timedelta(days=product.member_days)
    await change_credits(
        session,
        order.user_id,
        0,
        kind="membership",
        reason=f"bought {product.id}: member until {user.member_until.isoformat()}",
        reference=order.out_trade_no,
    )


# -- expiry ----------------------------------------------------------------------------------


async def close_expired_orders(billing: Billing, limit: int = 100) -> int:
    """Close pending orders past their expiry at WeChat Pay and here; returns how many.
    An order paid at the last moment is granted instead of closed."""
    async with billing.sessionmaker() as session:
        orders = list(
            (
                await session.scalars(
                    select(PaymentRecord)
                    .where(PaymentRecord.status == "pending", PaymentRecord.expires_at < utcnow())
                    .order_by(PaymentRecord.id)
                    .limit(limit)
                )
            ).all()
        )
    closed = 0
    for order in orders:
        if billing.wechatpay is not None:
            state = await sync_with_wechatpay(billing, order)
            if state == "SUCCESS" or state in _CLOSED_TRADE_STATES:
                continue
            if state == "UNKNOWN":
                continue  # WeChat Pay unreachable: try again next round
            try:
                await billing.wechatpay.close(order.out_trade_no)
            except WechatPayError as exc:
                if exc.wechat_code == "ORDERPAID":
                    await sync_with_wechatpay(billing, order)
                    continue
                logger.warning("closing order {} failed: {}", order.out_trade_no, exc.detail)
                continue
            except PaymentUnavailable:
                continue
        await _mark_closed(billing, order.id)
        closed += 1
    return closed


# -- refunds ---------------------------------------------------------------------------------


async def refund_order(
    billing: Billing, out_trade_no: str, reason: str, force: bool
) -> dict[str, Any]:
    """Refund a paid order in full and take back what it granted (see docs/BILLING.md).
    The order is ``refunded`` only once WeChat Pay says SUCCESS; until then ``refunding``."""
    wechatpay = billing.require_wechatpay()
    shortfall = 0
    async with billing.sessionmaker.begin() as session:
        order = await session.scalar(
            select(PaymentRecord)
            .where(PaymentRecord.out_trade_no == out_trade_no)
            .with_for_update()
        )
        if order is None:
            raise OrderNotFound()
        if order.status not in ("paid", "refunding"):
            raise OrderNotRefundable(f"Order {out_trade_no} is {order.status}")
        first_attempt = order.status == "paid"
        refund_no = order.refund_no or f"R{out_trade_no}"
        if first_attempt:
            # A refund that ended CLOSED cannot be reopened: a new attempt needs a new number.
            if order.refund_no is not None:
                refund_no = f"R{out_trade_no}-{secrets.token_hex(3)}"
            shortfall = await _take_back(session, billing, order, refund_no, reason, force)
        order_id, amount_fen = order.id, order.amount_fen
    try:
        answer = await wechatpay.refund(out_trade_no, refund_no, amount_fen, amount_fen, reason)
    except WechatPayError:
        # A definite refusal: nothing was refunded, so undo our side.
        if first_attempt:
            await _give_back(billing, order_id, refund_no, "WeChat Pay refused the refund", None)
        raise
    except PaymentUnavailable as exc:
        # Unknown outcome: stay "refunding"; a retry repeats the same out_refund_no, which
        # WeChat Pay treats as the same refund.
        raise PaymentUnavailable(
            "WeChat Pay did not answer; the order stays 'refunding', retry the refund"
        ) from exc
    refund_status = str(answer.get("status", ""))
    await apply_refund_status(billing, order_id, refund_no, refund_status)
    async with billing.sessionmaker() as session:
        order = await session.get(PaymentRecord, order_id)
        assert order is not None
        balance = await get_balance(session, order.user_id)
        user = await session.get(WechatUser, order.user_id)
        assert user is not None
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": refund_no,
        "status": order.status,
        "refund_status": order.refund_status or refund_status,
        "refunded_fen": order.refunded_fen,
        "credits_taken_back": order.refund_credits_taken,
        "credits_shortfall": shortfall,
        "balance": balance,
        "member_until": user.member_until,
    }


async def _take_back(
    session: AsyncSession,
    billing: Billing,
    order: PaymentRecord,
    refund_no: str,
    reason: str,
    force: bool,
) -> int:
    """Move a paid order to ``refunding`` and take back what it granted, recording how much
    on the order; returns the credits that were already spent (the shortfall)."""
    # The conditional UPDATE lets one of two concurrent refunds through.
    claimed = await session.execute(
        update(PaymentRecord)
        .where(PaymentRecord.id == order.id, PaymentRecord.status == "paid")
        .values(status="refunding", refund_no=refund_no, refund_status=None, updated_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise OrderNotRefundable(f"Order {order.out_trade_no} is already being refunded")
    product = billing.product(order.product_id)
    user = await session.get(WechatUser, order.user_id, with_for_update=True)
    assert user is not None
    taken, shortfall, member_seconds = 0, 0, 0
    if product.kind == "credits":
        balance = await get_balance(session, order.user_id)
        taken = min(product.credits, balance)
        shortfall = product.credits - taken
        if shortfall and not force:
            raise CreditsAlreadySpent(
                f"{shortfall} of the order's {product.credits} credits are spent"
            )
    elif user.member_until is not None:
        shortened = max(utcnow(), user.member_until - timedelta(days=product.member_days))
        member_seconds = max(0, int((user.member_until - shortened).total_seconds()))
        user.member_until = shortened
    note = f"refund of {order.out_trade_no}: {reason}"[:200]
    if shortfall:
        note = f"refund of {order.out_trade_no}; {shortfall} credits were already spent"
    await change_credits(
        session, order.user_id, -taken, kind="refund", reason=note, reference=refund_no
    )
    await session.execute(
        update(PaymentRecord)
        .where(PaymentRecord.id == order.id)
        .values(refund_credits_taken=taken, refund_member_seconds_taken=member_seconds)
    )
    return shortfall


async def _give_back(
    billing: Billing, order_id: int, refund_no: str, why: str, refund_status: str | None
) -> bool:
    """The refund did not happen (refused, or ended CLOSED): the order is ``paid`` again and
    the user gets back exactly what the refund took. At most once per refund number."""
    async with billing.sessionmaker.begin() as session:
        undone = await session.execute(
            update(PaymentRecord)
            .where(
                PaymentRecord.id == order_id,
                PaymentRecord.status == "refunding",
                PaymentRecord.refund_no == refund_no,
            )
            .values(status="paid", refund_status=refund_status, updated_at=utcnow())
        )
        if undone.rowcount != 1:  # type: ignore[attr-defined]
            return False
        order = await session.get(PaymentRecord, order_id, populate_existing=True)
        assert order is not None
        if order.refund_member_seconds_taken:
            user = await session.get(WechatUser, order.user_id, with_for_update=True)
            assert user is not None
            start = user.member_until if is_active_member(user.member_until) else utcnow()
            assert start is not None
            user.member_until = start + timedelta(seconds=order.refund_member_seconds_taken)
        await change_credits(
            session,
            order.user_id,
            order.refund_credits_taken,
            kind="refund_undo",
            reason=why[:200],
            reference=refund_no,
        )
    return True


async def apply_refund_status(
    billing: Billing, order_id: int, refund_no: str, refund_status: str
) -> str:
    """Apply WeChat Pay's word on refund ``refund_no`` (from its answer, a callback or a
    retry), idempotently: SUCCESS → ``refunded``; CLOSED → ``paid`` again with what was taken
    given back; PROCESSING and ABNORMAL (money stuck; an operator must act at WeChat Pay)
    leave the order ``refunding`` with the status recorded. Returns the order's status."""
    if refund_status == "CLOSED":
        await _give_back(billing, order_id, refund_no, "WeChat Pay closed the refund", "CLOSED")
    else:
        values: dict[str, Any] = {"refund_status": refund_status[:16], "updated_at": utcnow()}
        if refund_status == "SUCCESS":
            values |= {"status": "refunded", "refunded_fen": PaymentRecord.amount_fen}
        elif refund_status == "ABNORMAL":
            logger.error("refund {} is ABNORMAL: handle it at WeChat Pay", refund_no)
        async with billing.sessionmaker.begin() as session:
            await session.execute(
                update(PaymentRecord)
                .where(
                    PaymentRecord.id == order_id,
                    PaymentRecord.status == "refunding",
                    PaymentRecord.refund_no == refund_no,
                )
                .values(**values)
            )
    async with billing.sessionmaker() as session:
        status = await session.scalar(
            select(PaymentRecord.status).where(PaymentRecord.id == order_id)
        )
    return str(status)


async def apply_refund_notification(billing: Billing, refund: dict[str, Any]) -> str:
    """A ``REFUND.*`` callback's decrypted resource: checked against our refund, applied once.
    A refund we did not start (made at the merchant platform) is acknowledged unchanged."""
    wechatpay = billing.require_wechatpay()
    out_trade_no = str(refund.get("out_trade_no", ""))
    refund_no = str(refund.get("out_refund_no", ""))
    if refund.get("mchid") != wechatpay.mchid:
        raise CallbackRejected(f"mchid does not match for refund {refund_no[:64]!r}")
    async with billing.sessionmaker() as session:
        order = await session.scalar(
            select(PaymentRecord).where(PaymentRecord.out_trade_no == out_trade_no)
        )
    if order is None:
        raise CallbackRejected(f"unknown order {out_trade_no[:32]!r}")
    if order.refund_no != refund_no:
        logger.warning("refund {} of order {} was not started here", refund_no[:64], out_trade_no)
        return "unknown_refund"
    amount = refund.get("amount")
    refunded = amount.get("refund") if isinstance(amount, dict) else None
    if refunded != order.amount_fen:
        raise CallbackRejected(f"refund amount does not match order {out_trade_no!r}")
    return await apply_refund_status(
        billing, order.id, refund_no, str(refund.get("refund_status", ""))
    )


# -- balance ---------------------------------------------------------------------------------


async def credits_view(session: AsyncSession, user_id: int, limit: int) -> dict[str, Any]:
    user = await resolve_user(session, user_id)
    entries = (
        await session.scalars(
            select(CreditLedger)
            .where(CreditLedger.user_id == user.id)
            .order_by(CreditLedger.id.desc())
            .limit(limit)
        )
    ).all()
    return {
        "balance": await get_balance(session, user.id),
        "is_member": is_active_member(user.member_until),
        "member_until": user.member_until,
        "ledger": [
            {
                "id": entry.id,
                "kind": entry.kind,
                "delta": entry.delta,
                "balance_after": entry.balance_after,
                "reason": entry.reason,
                "reference": entry.reference,
                "created_at": entry.created_at,
            }
            for entry in entries
        ],
    }
