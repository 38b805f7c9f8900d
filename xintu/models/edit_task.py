from __future__ import annotations

from datetime import datetime

from sqlalchemy import CHAR, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, UTCDateTime, utcnow


class ImageEditTask(Base):
    """The truth about an edit task; the queue only delivers its id to a worker."""

    __tablename__ = "image_edit_tasks"
    __table_args__ = (
        Index("ix_image_edit_tasks_user_created_at", "user_id", "created_at"),
        Index("ix_image_edit_tasks_status_lease", "status", "lease_until"),
        Index("ix_image_edit_tasks_status_available", "status", "available_at"),
        Index("ix_image_edit_tasks_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    operation: Mapped[str] = mapped_column(String(32))
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    # SHA-256 of image + operation + canonical params: the edit cache key.
    cache_key: Mapped[str] = mapped_column(CHAR(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    input_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    result_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    result_mime: Mapped[str | None] = mapped_column(String(32), nullable=True)
    result_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0)
    # What the operation costs; charged on success only (none for members and cache hits).
    credit_cost: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Not claimable before this time (retry backoff); the sweeper kicks it again after.
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a queue message was last sent for it, so sweepers resend only lost messages.
    kicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
