"""Products, orders, the WeChat Pay callback, the caller's credits and admin refunds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from loguru import logger

from xintu.billing import service
from xintu.billing.credits import InsufficientCredits
from xintu.billing.schemas import (
    CreateOrderRequest,
    CreditsOut,
    OrderOut,
    ProductsOut,
    RefundOut,
    RefundRequest,
)
from xintu.billing.wechatpay import CallbackRejected, PaymentUnavailable, WechatPayError
from xintu.deps import AdminClaims, LimitsDep, SessionDep, SettingsDep, UserClaims
from xintu.errors import Forbidden, NotAuthenticated, RateLimited, responses
from xintu.responses import FastJSONResponse

router = APIRouter(tags=["billing"])


async def _billing(request: Request) -> service.Billing:
    billing: service.Billing = request.app.state.billing
    return billing


BillingDep = Annotated[service.Billing, Depends(_billing)]
OutTradeNo = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-|*]+$")]


@router.get("/billing/products")
async def products(settings: SettingsDep) -> ProductsOut:
    """Membership plans and credit packs on sale."""
    return ProductsOut(products=settings.billing_products)


@router.post(
    "/billing/orders",
    responses=responses(
        NotAuthenticated,
        Forbidden,
        service.UnknownProduct,
        service.OpenidRequired,
        service.TooManyPendingOrders,
        PaymentUnavailable,
        WechatPayError,
        RateLimited,
    ),
)
async def create_order(
    body: CreateOrderRequest, claims: UserClaims, billing: BillingDep, limits: LimitsDep
) -> OrderOut:
    """Create an order: JSAPI answers ``pay_params`` for ``wx.requestPayment``, Native a
    ``code_url`` for a QR code."""
    await limits.per_caller("orders", claims)
    order = await service.create_order(billing, claims.subject_id, body.product_id, body.trade_type)
    return OrderOut.model_validate(order)


@router.get(
    "/billing/orders/{out_trade_no}",
    responses=responses(NotAuthenticated, Forbidden, service.OrderNotFound),
)
async def get_order(out_trade_no: OutTradeNo, claims: UserClaims, billing: BillingDep) -> OrderOut:
    """One of the caller's orders; a pending order is first checked with WeChat Pay."""
    order = await service.get_order(billing, claims.subject_id, out_trade_no)
    return OrderOut.model_validate(order)


@router.post("/billing/wechatpay/notify", status_code=204, response_class=Response)
async def wechatpay_notify(request: Request, billing: BillingDep) -> Response:
    """WeChat Pay's payment callback: 204 once applied (or already applied), else a 4xx
    ``{"code": "FAIL", "message"}`` so that WeChat Pay retries and nothing changes."""
    # The body is capped (64 KiB) while it is read: xintu/body_limit.py.
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        outcome = await service.handle_notify(billing, headers, body)
    except CallbackRejected as exc:
        logger.warning("WeChat Pay callback rejected: {}", exc)
        return _notify_fail(exc.status, str(exc))
    except Exception:  # noqa: BLE001 - WeChat Pay must get its FAIL body; it will retry
        logger.exception("WeChat Pay callback failed")
        return _notify_fail(500, "internal error; retry later")
    logger.info("WeChat Pay callback: {}", outcome)
    return Response(status_code=204)


def _notify_fail(status: int, message: str) -> FastJSONResponse:
    return FastJSONResponse({"code": "FAIL", "message": message[:200]}, status_code=status)


@router.get("/me/credits", responses=responses(NotAuthenticated, Forbidden))
async def my_credits(
    claims: UserClaims,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CreditsOut:
    """The caller's balance, membership and latest ledger entries (newest first)."""
    return CreditsOut.model_validate(await service.credits_view(session, claims.subject_id, limit))


@router.post(
    "/admin/billing/refunds",
    responses=responses(
        NotAuthenticated,
        Forbidden,
        service.OrderNotFound,
        service.OrderNotRefundable,
        service.CreditsAlreadySpent,
        InsufficientCredits,
        PaymentUnavailable,
        WechatPayError,
    ),
)
async def refund(body: RefundRequest, _admin: AdminClaims, billing: BillingDep) -> RefundOut:
    """Refund a paid order in full through WeChat Pay and take back what it granted."""
    result = await service.refund_order(billing, body.out_trade_no, body.reason, body.force)
    return RefundOut.model_validate(result)
