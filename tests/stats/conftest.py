"""Helpers for the statistics tests: an admin token, a fake local classifier, raw log rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from xintu.categories import Category
from xintu.config import Settings
from xintu.inference.base import Classifier, Prediction, PreparedImage
from xintu.models import RequestLog

ADMIN = {"admin_username": "root", "admin_password": "correct horse battery"}


class FakeLocal:
    """A local classifier that always answers ``single_person``."""

    name = "local"
    model = "local-test"

    async def classify(self, image: PreparedImage) -> Prediction:  # noqa: ARG002
        return Prediction(Category.single_person, 0.7, "本地", "local-test", "local", "local")


@pytest.fixture
def with_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built in this test get the fake local classifier."""

    def factory(settings: Settings) -> Classifier:  # noqa: ARG001
        return FakeLocal()

    monkeypatch.setattr("xintu.main.build_local_classifier", factory)


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/api/v1/admin/login",
        json={"username": ADMIN["admin_username"], "password": ADMIN["admin_password"]},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def log_row(created_at: datetime, **fields: Any) -> dict[str, Any]:
    """A request_log row with defaults of a served remote classification."""
    return {
        "request_id": "r",
        "user_id": "device-x",
        "ip_address": "10.0.0.1",
        "endpoint": "classify",
        "image_hash": "a" * 64,
        "category": "pets",
        "confidence": 0.9,
        "from_cache": False,
        "inference_method": "remote",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "processing_time_ms": 100.0,
        "status_code": 200,
        "error_code": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": Decimal(0),
        "size_bytes": None,
        "created_at": created_at.astimezone(UTC),
    } | fields


async def insert_rows(app: FastAPI, rows: list[dict[str, Any]]) -> None:
    await app.state.classification.writer.flush()
    async with app.state.db.engine.begin() as connection:
        await connection.execute(insert(RequestLog), rows)
