"""Security headers on pages and JSON; /metrics and /docs kept from the public."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import AppFactory
from xintu.users.security import create_access_token


@pytest.mark.parametrize(
    ("path", "csp_start"),
    [
        ("/", "default-src 'self'"),
        ("/album/album.js", "default-src 'none'"),
        ("/api/v1/categories", "default-src 'none'"),
        ("/api/v1/no-such-route", "default-src 'none'"),
        ("/admin", "default-src 'self'"),
    ],
)
async def test_responses_carry_security_headers(
    make_client: AppFactory, sqlite_url: str, path: str, csp_start: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert csp.startswith(csp_start)
    assert "frame-ancestors 'none'" in csp
    # One policy per response: the dashboard's own is not doubled.
    assert len(response.headers.get_list("content-security-policy")) == 1


async def test_album_page_policy_allows_its_local_photo_previews(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        csp = (await client.get("/")).headers["content-security-policy"]
    assert "img-src 'self' data: blob:" in csp
    assert "script-src 'self';" in csp


async def test_metrics_needs_the_token_when_one_is_set(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, metrics_token="scrape-secret") as (
        app,
        client,
    ):
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        scraper = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        user = create_access_token("user", 1, app.state.settings.jwt_secret, timedelta(hours=1))
        as_user = await client.get("/metrics", headers={"Authorization": f"Bearer {user}"})
        admin = create_access_token("admin", 1, app.state.settings.jwt_secret, timedelta(hours=1))
        as_admin = await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert wrong.status_code == 401
    assert as_user.status_code == 401
    assert scraper.status_code == 200
    assert "xintu_http_requests" in scraper.text
    assert as_admin.status_code == 200


async def test_metrics_is_open_without_a_token(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert (await client.get("/metrics")).status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_docs_are_off_outside_development(
    make_client: AppFactory, sqlite_url: str, path: str
) -> None:
    async with make_client(
        database_url=sqlite_url,
        environment="production",
        jwt_secret="j" * 48,
        data_key="k" * 43,
    ) as (_, client):
        assert (await client.get(path)).status_code == 404
    async with make_client(database_url=sqlite_url) as (_, client):
        assert (await client.get(path)).status_code == 200
