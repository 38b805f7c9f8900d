from __future__ import annotations

from datetime import datetime

from sqlalchemy import CHAR, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class ImageCacheClaim(Base):
    """An uploader who sent an image under a hash and the category it got."""

    __tablename__ = "image_cache_claims"
    __table_args__ = (
        UniqueConstraint("image_hash", "uploader", name="uq_image_cache_claims_hash_uploader"),
        Index("ix_image_cache_claims_hash_category", "image_hash", "category"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    image_hash: Mapped[str] = mapped_column(CHAR(64))
    # "user:<id>" for an authenticated user, else "ip:<address>".
    uploader: Mapped[str] = mapped_column(String(80))
    category: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
