from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

_DEVICE_ID = {"min_length": 1, "max_length": 128, "pattern": r"^[\x21-\x7e]+$"}


class WechatLoginRequest(BaseModel):
    code: str = Field(min_length=1, max_length=128)
    # The device's guest (if any) is merged into this WeChat account.
    device_id: str | None = Field(default=None, **_DEVICE_ID)  # type: ignore[call-overload]


class GuestLoginRequest(BaseModel):
    device_id: str = Field(**_DEVICE_ID)  # type: ignore[call-overload]


class UserOut(BaseModel):
    id: int
    nickname: str
    avatar_url: str
    is_guest: bool
    is_member: bool
    member_until: datetime | None
    credits: int


class TokenOut(BaseModel):
    success: bool = True
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut
    created: bool
    merged_guest_ids: list[int]


class MeOut(UserOut):
    success: bool = True
