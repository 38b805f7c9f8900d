from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class PaymentRecord(Base):
    """A WeChat Pay order, from prepay to paid, closed or refunded."""

    __tablename__ = "payment_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("wechat_users.id"), index=True)
    product_id: Mapped[str] = mapped_column(String(64))
    trade_type: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8), default="CNY")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    prepay_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_url: Mapped[str | None] = mapped_column(String(256), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    payer_openid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    refund_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # WeChat Pay's last word on the refund (PROCESSING, SUCCESS, CLOSED, ABNORMAL), and
    # what the refund took back, to give it back exactly if the refund ends CLOSED.
    refund_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    refund_credits_taken: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refund_member_seconds_taken: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
