from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class UserCredits(Base):
    """The balance; every change to it is also a ``credit_ledger`` row."""

    __tablename__ = "user_credits"

    user_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("wechat_users.id"), primary_key=True, autoincrement=False
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
