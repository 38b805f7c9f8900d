from __future__ import annotations

from datetime import datetime

from sqlalchemy import CHAR, BigInteger, Boolean, Float, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class ImageClassificationCache(Base):
    """One answer per image hash, served to everyone once ``shared`` (DESIGN §4.1)."""

    __tablename__ = "image_classification_cache"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    image_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    description: Mapped[str] = mapped_column(String(500), default="")
    model: Mapped[str] = mapped_column(String(64), index=True)
    inference_method: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # True when the server hashed the bytes itself or the uploader quorum agreed.
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # True when the server hashed the bytes itself: authoritative, never re-decided.
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Perceptual fingerprint of the upload the entry was decided on (xintu/images/fingerprint.py):
    # the 64-bit pHash (signed), its four 16-bit bands (indexed: near-duplicate lookups) and
    # a 4×4 colour thumbnail. NULL for entries without one (too little structure, or older).
    phash: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    phash_band0: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    phash_band1: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    phash_band2: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    phash_band3: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    thumb: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    hit_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A video's answer (DESIGN §4.9): JSON {"duration_s", "frames"}; null for images.
    video_details: Mapped[str | None] = mapped_column(Text, nullable=True)
