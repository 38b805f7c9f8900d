from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from xintu.config import Product


class ProductsOut(BaseModel):
    success: bool = True
    currency: str = "CNY"
    products: list[Product]


class CreateOrderRequest(BaseModel):
    product_id: str = Field(min_length=1, max_length=64)
    trade_type: Literal["jsapi", "native"] = "jsapi"


class PayParams(BaseModel):
    appId: str  # noqa: N815 - the names wx.requestPayment expects
    timeStamp: str  # noqa: N815
    nonceStr: str  # noqa: N815
    package: str
    signType: str  # noqa: N815
    paySign: str  # noqa: N815


class OrderOut(BaseModel):
    success: bool = True
    out_trade_no: str
    product_id: str
    trade_type: str
    amount_fen: int
    currency: str
    status: str
    code_url: str | None
    pay_params: PayParams | None = None
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    refunded_fen: int
    refund_status: str | None = None


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    delta: int
    balance_after: int
    reason: str
    reference: str | None
    created_at: datetime


class CreditsOut(BaseModel):
    success: bool = True
    balance: int
    is_member: bool
    member_until: datetime | None
    ledger: list[LedgerEntryOut]


class RefundRequest(BaseModel):
    out_trade_no: str = Field(min_length=1, max_length=32)
    reason: str = Field(default="refund", max_length=80)
    # Refund even when the user already spent some of the order's credits (see BILLING.md).
    force: bool = False


class RefundOut(BaseModel):
    success: bool = True
    out_trade_no: str
    out_refund_no: str
    status: str
    refund_status: str
    refunded_fen: int
    credits_taken_back: int
    credits_shortfall: int
    balance: int
    member_until: datetime | None
