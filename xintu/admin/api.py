"""``POST /admin/login`` (DESIGN §4.3): an admin token for the statistics and the dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from xintu.admin import schemas
from xintu.admin.service import InvalidCredentials, authenticate
from xintu.deps import LimitsDep, SessionDep, SettingsDep
from xintu.errors import RateLimited, responses
from xintu.users.security import create_access_token

router = APIRouter(tags=["admin"])


@router.post(
    "/admin/login",
    response_model=schemas.AdminLoginResponse,
    responses=responses(InvalidCredentials, RateLimited),
)
async def admin_login(
    body: schemas.AdminLoginRequest, limits: LimitsDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Exchange an admin's username and password for a bearer token."""
    await limits.per_ip("admin_login")
    admin = await authenticate(session, body.username, body.password)
    expires_in = timedelta(minutes=settings.admin_token_expire_minutes)
    token = create_access_token("admin", admin.id, settings.jwt_secret or "", expires_in)
    return {
        "success": True,
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(expires_in.total_seconds()),
        "admin": {"id": admin.id, "username": admin.username},
    }
