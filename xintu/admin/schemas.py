"""Request and response shapes of admin login (DESIGN §4.3)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AdminLoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class AdminOut(BaseModel):
    id: int
    username: str


class AdminLoginResponse(BaseModel):
    success: bool
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    admin: AdminOut
