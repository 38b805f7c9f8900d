"""Migrations once under a database lock; instances wait for the schema instead of crashing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from loguru import logger
from sqlalchemy import inspect

from tests.conftest import BACKENDS, MYSQL_URL, POSTGRES_URL, _create_server_database
from tests.deploy.servers import BIN, free_port, service_env, start, wait_exit
from xintu.config import Settings
from xintu.db import create_engine
from xintu.main import create_app
from xintu.migrations import (
    SchemaNotReady,
    current_schema_problem,
    head_revision,
    prepare_schema,
    upgrade_to_head_async,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all, once per configured backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
        return
    base = MYSQL_URL if request.param == "mysql" else POSTGRES_URL
    assert base is not None
    url, drop = await _create_server_database(base)
    yield url
    await drop()


@asynccontextmanager
async def serve(
    url: str, data_dir: Path, migrate_on_start: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, given the time a migration from empty takes on MySQL."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        data_dir=data_dir,
        local_model_enabled=False,
        migrate_on_start=migrate_on_start,
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


async def test_two_migrate_commands_started_together_both_succeed(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = service_env(tmp_path / "data", database_url=empty_database_url)
    logs = [tmp_path / f"migrate{number}.out" for number in range(2)]
    processes = [start([str(BIN / "xintu"), "migrate"], env, log) for log in logs]
    codes = [await wait_exit(process, 120) for process in processes]
    assert codes == [0, 0], [log.read_text() for log in logs]
    assert await current_schema_problem(empty_database_url) is None
    assert {"alembic_version", "admin_users", "image_classification_cache"} <= await _tables(
        empty_database_url
    )


async def test_two_apps_starting_together_on_an_empty_database_both_serve(
    empty_database_url: str, tmp_path: Path
) -> None:
    async def serve_health() -> int:
        async with serve(empty_database_url, tmp_path / "data") as client:
            return (await client.get("/api/v1/health")).status_code

    assert await asyncio.gather(serve_health(), serve_health()) == [200, 200]
    assert await current_schema_problem(empty_database_url) is None


async def test_an_app_waits_for_the_migrate_job_answering_503_meanwhile(
    empty_database_url: str, tmp_path: Path
) -> None:
    async with serve(empty_database_url, tmp_path / "data", migrate_on_start=False) as client:
        health = await client.get("/api/v1/health")
        check = await client.post("/api/v1/classify/check-cache", json={"image_hash": "a" * 64})
        assert health.status_code == 503
        assert health.json()["status"] == "down"
        assert health.json()["database"]["error"] == "schema_not_ready"
        assert "no schema: run `xintu migrate`" in health.json()["database"]["detail"]
        assert check.status_code == 503
        assert check.json()["code"] == "schema_not_ready"
        assert "alembic_version" not in await _tables(empty_database_url)  # it did not migrate

        await upgrade_to_head_async(empty_database_url)  # the migrate job
        deadline = time.monotonic() + 30
        while (await client.get("/api/v1/health")).status_code != 200:
            assert time.monotonic() < deadline, "the app never saw the schema"
            await asyncio.sleep(0.1)
        check = await client.post("/api/v1/classify/check-cache", json={"image_hash": "a" * 64})
    assert check.status_code == 200, check.text


async def test_a_worker_waits_for_the_migrate_job(empty_database_url: str) -> None:
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        waiting = asyncio.create_task(prepare_schema(empty_database_url, migrate=False, wait_s=60))
        deadline = time.monotonic() + 30
        while not warnings and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "no schema" in warnings[0]
        assert not waiting.done()
        await upgrade_to_head_async(empty_database_url)
        await asyncio.wait_for(waiting, 30)
    finally:
        logger.remove(sink)


async def test_a_worker_gives_up_with_a_clear_message(empty_database_url: str) -> None:
    with pytest.raises(SchemaNotReady, match="no schema: run `xintu migrate`"):
        await prepare_schema(empty_database_url, migrate=False, wait_s=0)
    assert "alembic_version" not in await _tables(empty_database_url)


async def test_an_unreachable_database_is_waited_for_then_reported() -> None:
    # `xintu migrate` started beside a database that is not up yet.
    url = f"mysql+asyncmy://root@127.0.0.1:{free_port()}/xintu"
    started = time.monotonic()
    with pytest.raises(SchemaNotReady, match="unreachable"):
        await prepare_schema(url, migrate=True, wait_s=1.5)
    assert time.monotonic() - started >= 1.5


async def test_a_newer_schema_serves_this_release(database_url: str) -> None:
    # The next release migrated first (rolling update): this one keeps serving.
    from xintu.migrations import schema_problem

    assert schema_problem(("9999_next_release",)) is None
    assert schema_problem((head_revision(),)) is None
    assert "needs" in (schema_problem(("0001",)) or "")
    assert await current_schema_problem(database_url) is None


async def test_an_app_on_an_empty_database_migrates_it_and_answers(
    empty_database_url: str, tmp_path: Path
) -> None:
    async with serve(empty_database_url, tmp_path / "data") as client:
        response = await client.post("/api/v1/classify/check-cache", json={"image_hash": "a" * 64})
        health = await client.get("/api/v1/health")
    assert response.status_code == 200, response.text
    assert health.json()["database"]["ok"] is True  # degraded only: no provider configured
