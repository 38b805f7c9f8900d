"""Test fixtures: real databases (SQLite always; MariaDB and PostgreSQL when their URLs are
set), real Redis when set, the app driven over HTTP, and fake remote servers on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.fake_wechat import FakeWechat
from tests.fixtures.fake_wechatpay import APPID, FakeWechatPay, Keys
from xintu.config import Settings
from xintu.db import create_engine
from xintu.inference.base import Classifier
from xintu.main import create_app
from xintu.migrations import upgrade_to_head_async
from xintu.models import Base

MYSQL_URL = os.environ.get("XINTU_TEST_MYSQL_URL")
POSTGRES_URL = os.environ.get("XINTU_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("XINTU_TEST_REDIS_URL")

BACKENDS = ["sqlite"] + (["mysql"] if MYSQL_URL else []) + (["postgresql"] if POSTGRES_URL else [])


async def _create_server_database(base_url: str) -> tuple[str, Callable[[], Any]]:
    """A fresh database on a MySQL/PostgreSQL server; returns its URL and a dropper."""
    url = make_url(base_url)
    name = f"xintu_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base_url)
    isolation = "AUTOCOMMIT"
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level=isolation)
        await connection.execute(text(f"CREATE DATABASE {name}"))
    await admin.dispose()

    async def drop() -> None:
        engine = create_engine(base_url)
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level=isolation)
            if url.get_backend_name() == "postgresql":
                await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await engine.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
async def migrated_databases(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, str]]:
    """One migrated database per backend for the whole session (migrations run from empty)."""
    urls: dict[str, str] = {}
    droppers = []
    sqlite_path = tmp_path_factory.mktemp("db") / "xintu.db"
    urls["sqlite"] = f"sqlite+aiosqlite:///{sqlite_path}"
    for backend, base in (("mysql", MYSQL_URL), ("postgresql", POSTGRES_URL)):
        if base:
            urls[backend], drop = await _create_server_database(base)
            droppers.append(drop)
    for url in urls.values():
        await upgrade_to_head_async(url)
    yield urls
    for drop in droppers:
        await drop()


async def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(delete(table))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, migrated_databases: dict[str, str]) -> str:
    """A migrated, empty database; the test runs once per configured backend."""
    url = migrated_databases[request.param]
    await _empty_tables(url)
    return url


@pytest.fixture
async def sqlite_url(migrated_databases: dict[str, str]) -> str:
    """The SQLite database only, for tests whose subject is not the database."""
    url = migrated_databases["sqlite"]
    await _empty_tables(url)
    return url


@pytest.fixture(scope="session")
def redis_test_url() -> str | None:
    """A Redis database number of its own, so parallel runs on one server stay apart."""
    if not REDIS_URL:
        return None
    url = make_url(REDIS_URL.replace("redis://", "postgresql://", 1))
    return f"redis://{url.host}:{url.port or 6379}/{random.randrange(1, 16)}"


@pytest.fixture
async def redis_url(redis_test_url: str | None) -> str:
    if redis_test_url is None:
        pytest.skip("XINTU_TEST_REDIS_URL is not set")
    client = Redis.from_url(redis_test_url)
    await client.flushdb()
    await client.aclose()
    return redis_test_url


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    server = FakeLLM()
    await server.start()
    yield server
    await server.stop()


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def make_client(tmp_path: Path) -> AppFactory:
    """``async with make_client(database_url=…, **settings) as (app, client)``: the app with
    its lifespan running, reached over HTTP through ASGI."""

    @asynccontextmanager
    async def factory(
        client_host: str = "127.0.0.1", local: Classifier | None = None, **overrides: Any
    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "local_model_enabled": False,
            "rate_limit_classify": "0",
            "rate_limit_check": "0",
            # Abuse limits are tested where they are the subject (tests/users/test_abuse_limits.py).
            "rate_limit_guest_login": "0",
            "rate_limit_wechat_login": "0",
            "rate_limit_orders": "0",
            "rate_limit_edit_submits": "0",
            "log_flush_interval_s": 60.0,
            "log_level": "WARNING",
        }
        values.update(overrides)
        app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
        if local is not None:
            app.state.local_classifier_factory = lambda _settings: local
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, client=(client_host, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield app, client

    return factory


def llm_settings(fake: FakeLLM, **extra: Any) -> dict[str, Any]:
    """Settings that point the OpenAI provider at the fake server."""
    return {
        "providers": "openai",
        "openai_api_key": "sk-test",
        "openai_base_url": fake.base_url,
        "openai_model": "gpt-4o-mini",
        **extra,
    }


@pytest.fixture(scope="session")
def wechatpay_keys() -> Keys:
    """RSA keys for the merchant, WeChat Pay's platform and a forger, made once per session."""
    return Keys.generate()


@pytest.fixture
async def fake_wechat() -> AsyncIterator[FakeWechat]:
    server = FakeWechat()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_wechatpay(wechatpay_keys: Keys) -> AsyncIterator[FakeWechatPay]:
    server = FakeWechatPay(wechatpay_keys)
    await server.start()
    yield server
    await server.stop()


def wechat_settings(fake: FakeWechat, **extra: Any) -> dict[str, Any]:
    """Settings that point WeChat login at the fake server."""
    return {
        "wechat_appid": fake.appid,
        "wechat_secret": fake.secret,
        "wechat_api_base": fake.base_url,
        **extra,
    }


def wechatpay_settings(fake: FakeWechatPay, directory: Path, **extra: Any) -> dict[str, Any]:
    """Settings for a merchant whose WeChat Pay is the fake server (keys written as PEM)."""
    private_path, public_path = fake.keys.write(directory)
    return {
        "wechat_appid": APPID,
        "wechatpay_mchid": fake.mchid,
        "wechatpay_merchant_serial": fake.merchant_serial,
        "wechatpay_private_key_path": private_path,
        "wechatpay_apiv3_key": fake.apiv3_key,
        "wechatpay_public_key_path": public_path,
        "wechatpay_public_key_id": fake.public_key_id,
        "wechatpay_notify_url": "https://xintu.example.com/api/v1/billing/wechatpay/notify",
        "wechatpay_api_base": fake.base_url,
        **extra,
    }
