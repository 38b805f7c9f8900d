from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class RequestLog(Base):
    """One row per served or failed classification; check-cache misses write none."""

    __tablename__ = "request_log"
    # The statistics indexes cover every column their queries read (migrations 0003, 0004).
    __table_args__ = (
        Index(
            "ix_request_log_stats",
            "created_at",
            "inference_method",
            "from_cache",
            "status_code",
            "endpoint",
            "processing_time_ms",
            "size_bytes",
            "cost",
            "user_id",
            "ip_address",
        ),
        Index(
            "ix_request_log_method_stats",
            "inference_method",
            "created_at",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cost",
        ),
        Index(
            "ix_request_log_category_stats", "category", "created_at", "status_code", "image_hash"
        ),
        # Top users: counts per caller, then the details of the few returned (migration 0004).
        Index(
            "ix_request_log_user_stats",
            "user_id",
            "created_at",
            "from_cache",
            "inference_method",
            "ip_address",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    # "user:<id>" of the account that made the request; never a client-chosen value.
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The client's own X-User-ID label: recorded, but it identifies nobody (DESIGN §4.1).
    client_label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    image_hash: Mapped[str | None] = mapped_column(CHAR(64), nullable=True, index=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    from_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    inference_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processing_time_ms: Mapped[float] = mapped_column(Float, default=0.0)
    status_code: Mapped[int] = mapped_column(SmallInteger, default=200)
    error_code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=Decimal(0))
    # Size of the original image when known; a check-cache hit saved uploading it.
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
