"""``GET /health``: what it reports and when it answers 503."""

from __future__ import annotations

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM


async def test_health_reports_database_providers_and_local_model(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (_, client):
        response = await client.get("/api/v1/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["latency_ms"] >= 0
    assert body["redis"] is None
    assert body["providers"] == [
        {
            "name": "openai",
            "model": "gpt-4o-mini",
            "configured": True,
            "available": True,
            "circuit": "closed",
        }
    ]
    assert body["local_model"] == {"available": False, "loaded": False}
    assert body["version"]


async def test_health_with_redis(make_client: AppFactory, sqlite_url: str, redis_url: str) -> None:
    async with make_client(database_url=sqlite_url, redis_url=redis_url) as (_, client):
        body = (await client.get("/api/v1/health")).json()
    assert body["redis"]["ok"] is True


async def test_health_is_503_when_the_database_is_down(make_client: AppFactory) -> None:
    # Nothing listens on this port: the database is unreachable.
    url = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
    async with make_client(database_url=url) as (_, client):
        response = await client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["database"]["ok"] is False


async def test_health_is_degraded_without_any_classifier(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        body = (await client.get("/api/v1/health")).json()
    assert body["status"] == "degraded"


async def test_an_unexpected_error_answers_500_in_the_api_shape(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, client):

        async def broken() -> None:
            raise RuntimeError("a bug")

        app.router.add_api_route("/broken", broken)
        response = await client.get("/broken", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "code": "internal_error",
        "detail": "Internal error; request id req-123",
    }
    assert response.headers["x-request-id"] == "req-123"
