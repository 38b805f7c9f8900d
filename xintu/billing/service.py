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
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import select, update
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
        user = await resolve_user(session, user_id)
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
    transaction = billing.wechatpay.decrypt_resource(resource)
    if event_type != "TRANSACTION.SUCCESS":
        # Refund results and other events need no change here; acknowledge them.
        logger.info("WeChat Pay event {} acknowledged", event_type[:40])
        return "ignored"
    return await apply_transaction(billing, transaction)


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
    """Refund a paid order in full and take back what it granted (see docs/BILLING.md)."""
    wechatpay = billing.require_wechatpay()
    taken, shortfall = 0, 0
    previous_member_until: datetime | None = None
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
        if first_attempt:
            # The conditional UPDATE lets one of two concurrent refunds through.
            claimed = await session.execute(
                update(PaymentRecord)
                .where(PaymentRecord.id == order.id, PaymentRecord.status == "paid")
                .values(status="refunding", refund_no=f"R{out_trade_no}", updated_at=utcnow())
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise OrderNotRefundable(f"Order {out_trade_no} is already being refunded")
            product = billing.product(order.product_id)
            user = await session.get(WechatUser, order.user_id, with_for_update=True)
            assert user is not None
            if product.kind == "credits":
                balance = await get_balance(session, order.user_id)
                taken = min(product.credits, balance)
                shortfall = product.credits - taken
                if shortfall and not force:
                    raise CreditsAlreadySpent(
                        f"{shortfall} of the order's {product.credits} credits are spent"
                    )
            else:
                previous_member_until = user.member_until
                if user.member_until is not None:
                    user.member_until = max(
                        utcnow(), user.member_until - timedelta(days=product.member_days)
                    )
            note = f"refund of {out_trade_no}: {reason}"[:200]
            if shortfall:
                note = f"refund of {out_trade_no}; {shortfall} credits were already spent"
            # A refused refund is undone and may be tried again: each attempt its own entry.
            await change_credits(
                session,
                order.user_id,
                -taken,
                kind="refund",
                reason=note,
                reference=f"{out_trade_no}:{secrets.token_hex(4)}",
            )
        order_id, user_id, amount_fen = order.id, order.user_id, order.amount_fen
        refund_no = f"R{out_trade_no}"
    try:
        answer = await wechatpay.refund(out_trade_no, refund_no, amount_fen, amount_fen, reason)
    except WechatPayError:
        # A definite refusal: nothing was refunded, so undo our side.
        if first_attempt:
            await _undo_refund(billing, order_id, user_id, taken, previous_member_until)
        raise
    except PaymentUnavailable as exc:
        # Unknown outcome: stay "refunding"; a retry repeats the same out_refund_no, which
        # WeChat Pay treats as the same refund.
        raise PaymentUnavailable(
            "WeChat Pay did not answer; the order stays 'refunding', retry the refund"
        ) from exc
    async with billing.sessionmaker.begin() as session:
        await session.execute(
            update(PaymentRecord)
            .where(PaymentRecord.id == order_id)
            .values(status="refunded", refunded_fen=amount_fen, updated_at=utcnow())
        )
        balance = await get_balance(session, user_id)
        user = await session.get(WechatUser, user_id)
        assert user is not None
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": refund_no,
        "status": "refunded",
        "refund_status": str(answer.get("status", "")),
        "refunded_fen": amount_fen,
        "credits_taken_back": taken,
        "credits_shortfall": shortfall,
        "balance": balance,
        "member_until": user.member_until,
    }


async def _undo_refund(
    billing: Billing,
    order_id: int,
    user_id: int,
    taken: int,
    previous_member_until: datetime | None,
) -> None:
    async with billing.sessionmaker.begin() as session:
        order = await session.get(PaymentRecord, order_id, with_for_update=True)
        assert order is not None
        order.status = "paid"
        if previous_member_until is not None:
            user = await session.get(WechatUser, user_id, with_for_update=True)
            assert user is not None
            user.member_until = previous_member_until
        await change_credits(
            session,
            user_id,
            taken,
            kind="refund_undo",
            reason="WeChat Pay refused the refund",
            reference=f"{order.out_trade_no}:{secrets.token_hex(4)}",
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
