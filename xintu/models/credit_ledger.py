from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class CreditLedger(Base):
    """Append-only: every grant, purchase, use, refund and adjustment of credits."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        # One entry per (kind, reference): a repeated callback cannot grant twice.
        UniqueConstraint("kind", "reference", name="uq_credit_ledger_kind_reference"),
        Index("ix_credit_ledger_user_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("wechat_users.id"))
    kind: Mapped[str] = mapped_column(String(24))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    reference: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
