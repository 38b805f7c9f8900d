"""Helpers for the edit tests: users with tokens, the fake edit server, polling."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from tests.fixtures.fake_image_edit import FakeImageEdit
from xintu.db import Database
from xintu.models import UserCredits, WechatUser
from xintu.models.base import utcnow
from xintu.users.security import create_access_token

ASTRONAUT = Path(__import__("skimage").__file__).parent / "data" / "astronaut.png"
T = TypeVar("T")


@pytest.fixture
async def fake_edit() -> AsyncIterator[FakeImageEdit]:
    server = FakeImageEdit()
    await server.start()
    yield server
    await server.stop()


def edit_settings(fake: FakeImageEdit | None = None, **extra: Any) -> dict[str, Any]:
    """Fast sweeps and short leases; both providers pointed at the fake server."""
    values: dict[str, Any] = {
        "edit_sweep_interval_s": 0.2,
        "edit_lease_s": 3.0,
        "edit_retry_backoff_s": 0.05,
        "edit_worker_concurrency": 2,
    }
    if fake is not None:
        values.update(
            edit_providers="dashscope,openai",
            dashscope_api_key="ds-edit",
            edit_dashscope_base_url=fake.dashscope_base_url,
            openai_api_key="sk-edit",
            edit_openai_base_url=fake.openai_base_url,
        )
    values.update(extra)
    return values


async def create_user(database: Database | str, *, credits: int = 0, member: bool = False) -> int:
    owned = isinstance(database, str)
    db = Database(database) if isinstance(database, str) else database
    try:
        async with db.sessionmaker() as session, session.begin():
            user = WechatUser(
                nickname="tester",
                member_until=utcnow() + timedelta(days=30) if member else None,
            )
            session.add(user)
            await session.flush()
            if credits:
                session.add(UserCredits(user_id=user.id, balance=credits))
            return user.id
    finally:
        if owned:
            await db.dispose()


def auth(app: FastAPI, user_id: int) -> dict[str, str]:
    token = create_access_token("user", user_id, app.state.settings.jwt_secret, timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


async def new_user(app: FastAPI, **kwargs: Any) -> tuple[int, dict[str, str]]:
    user_id = await create_user(app.state.db, **kwargs)
    return user_id, auth(app, user_id)


def photo(seed: int = 0, size: tuple[int, int] = (160, 120), contrast: float = 1.0) -> bytes:
    """A photo-like JPEG: gradients and blobs; ``contrast`` < 1 makes it dull."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            128 + 100 * np.sin(x / (9 + seed % 7)),
            128 + 100 * np.cos(y / (11 + seed % 5)),
            128 + 80 * np.sin((x + y) / 13),
        ],
        axis=-1,
    )
    base += rng.normal(0, 6, base.shape)
    base = 128 + (base - 128) * contrast
    image = Image.fromarray(np.clip(base, 0, 255).astype("uint8"), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


async def submit(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    operation: str,
    params: str | None = None,
) -> httpx.Response:
    form = {"operation": operation}
    if params is not None:
        form["params"] = params
    return await client.post(
        "/api/v1/edit/tasks",
        files={"file": ("photo.jpg", data, "image/jpeg")},
        data=form,
        headers=headers,
    )


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float = 20.0, interval_s: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


async def wait_finished(
    client: httpx.AsyncClient, headers: dict[str, str], task_id: str, timeout_s: float = 20.0
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return await eventually(probe, timeout_s)
