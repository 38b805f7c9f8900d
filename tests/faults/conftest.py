"""Fixtures of the fault suite: a Redis of the test's own, a database behind a proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import MYSQL_URL, POSTGRES_URL, _empty_tables
from tests.fixtures.redis_process import RedisProcess
from tests.fixtures.tcp_proxy import TcpProxy

SERVER_BACKENDS = (["mysql"] if MYSQL_URL else []) + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture
async def redis_process(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    if not RedisProcess.installed():
        pytest.skip("redis-server is not installed")
    server = RedisProcess(tmp_path)
    await server.start()
    yield server
    server.kill()


@pytest.fixture(params=SERVER_BACKENDS or [pytest.param("none", marks=pytest.mark.skip)])
async def proxied_database(
    request: pytest.FixtureRequest, migrated_databases: dict[str, str]
) -> AsyncIterator[tuple[str, TcpProxy]]:
    """An empty migrated MariaDB or PostgreSQL database reached through a ``TcpProxy``;
    yields the URL through the proxy and the proxy."""
    direct = migrated_databases[request.param]
    await _empty_tables(direct)
    url = make_url(direct)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 0)
    await proxy.start()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    await proxy.stop()
