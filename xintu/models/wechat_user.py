from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from xintu.models.base import Base, BigIntPK, UTCDateTime, utcnow


class WechatUser(Base):
    """An app user: a WeChat account, or a guest bound to a device until merged."""

    __tablename__ = "wechat_users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    openid: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    mp_openid: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    is_guest: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        BigIntPK, ForeignKey("wechat_users.id"), nullable=True
    )
    nickname: Mapped[str] = mapped_column(String(64), default="")
    avatar_url: Mapped[str] = mapped_column(String(512), default="")
    # AES-GCM ciphertext (nonce || ciphertext) under XINTU_DATA_KEY; never returned.
    session_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    member_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
