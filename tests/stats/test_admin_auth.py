"""Admin accounts and tokens: Argon2 hashes, login, bootstrap, 401/403 on statistics."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.conftest import AppFactory
from tests.stats.conftest import ADMIN, admin_headers
from xintu.models import AdminUser
from xintu.users.security import create_access_token

STATS_PATHS = (
    "today",
    "cache-efficiency",
    "category-distribution",
    "users/top",
    "costs",
    "performance",
)


async def test_statistics_need_an_admin_token(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, **ADMIN) as (app, client):
        secret = app.state.settings.jwt_secret
        user_token = create_access_token("user", 1, secret, timedelta(minutes=5))
        admin = await admin_headers(client)
        for path in STATS_PATHS:
            url = f"/api/v1/stats/{path}"
            missing = await client.get(url)
            assert (missing.status_code, missing.json()["code"]) == (401, "not_authenticated")
            forged = await client.get(url, headers={"Authorization": "Bearer x.y.z"})
            assert forged.status_code == 401
            user = await client.get(url, headers={"Authorization": f"Bearer {user_token}"})
            assert (user.status_code, user.json()["code"]) == (403, "forbidden")
            assert (await client.get(url, headers=admin)).status_code == 200


async def test_bootstrap_admin_is_stored_with_an_argon2_hash(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        async with app.state.db.sessionmaker() as session:
            admin = await session.scalar(select(AdminUser))
        assert admin is not None
        assert admin.username == "root"
        assert admin.password_hash.startswith("$argon2id$")
        assert ADMIN["admin_password"] not in admin.password_hash
        login = await client.post(
            "/api/v1/admin/login", json={"username": "root", "password": ADMIN["admin_password"]}
        )
        body = login.json()
        assert (login.status_code, body["token_type"], body["admin"]["username"]) == (
            200,
            "bearer",
            "root",
        )
        assert body["expires_in"] == 12 * 3600
    # A second start with a new password updates the same admin.
    async with make_client(
        database_url=database_url, admin_username="root", admin_password="another secret"
    ) as (app, client):
        async with app.state.db.sessionmaker() as session:
            assert len((await session.scalars(select(AdminUser))).all()) == 1
        old = await client.post(
            "/api/v1/admin/login", json={"username": "root", "password": ADMIN["admin_password"]}
        )
        assert old.status_code == 401
        new = await client.post(
            "/api/v1/admin/login", json={"username": "root", "password": "another secret"}
        )
        assert new.status_code == 200


async def test_wrong_password_unknown_user_and_inactive_admin_get_401(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, **ADMIN) as (app, client):
        for username, password in (("root", "wrong password"), ("nobody", "whatever1")):
            response = await client.post(
                "/api/v1/admin/login", json={"username": username, "password": password}
            )
            assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")
        async with app.state.db.engine.begin() as connection:
            await connection.execute(update(AdminUser).values(is_active=False))
        response = await client.post(
            "/api/v1/admin/login",
            json={"username": "root", "password": ADMIN["admin_password"]},
        )
        assert response.status_code == 401
        empty = await client.post("/api/v1/admin/login", json={"username": "", "password": ""})
        assert empty.status_code == 422


async def test_deactivated_admins_token_stops_reading_statistics(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        headers = await admin_headers(client)
        assert (await client.get("/api/v1/stats/today", headers=headers)).status_code == 200
        async with app.state.db.engine.begin() as connection:
            await connection.execute(update(AdminUser).values(is_active=False))
            admin_id = await connection.scalar(select(AdminUser.id))
        # Another process disabled the admin: this one believes its cached answer for at most
        # XINTU_ACCOUNT_STATUS_TTL_S seconds; forgetting it here skips the wait.
        app.state.accounts.forget_admin(admin_id)
        response = await client.get("/api/v1/stats/today", headers=headers)
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


async def test_admin_token_naming_no_admin_is_refused(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        token = create_access_token(
            "admin", 987_654, app.state.settings.jwt_secret, timedelta(minutes=5)
        )
        for path in STATS_PATHS:
            response = await client.get(
                f"/api/v1/stats/{path}", headers={"Authorization": f"Bearer {token}"}
            )
            assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


async def test_admin_status_is_cached_for_seconds_only(
    make_client: AppFactory, sqlite_url: str
) -> None:
    """With the TTL at 0 every request reads the account: a disabled admin is refused at
    the very next request, with no invalidation at all."""
    async with make_client(database_url=sqlite_url, account_status_ttl_s=0, **ADMIN) as (
        app,
        client,
    ):
        headers = await admin_headers(client)
        assert (await client.get("/api/v1/stats/today", headers=headers)).status_code == 200
        async with app.state.db.engine.begin() as connection:
            await connection.execute(update(AdminUser).values(is_active=False))
        response = await client.get("/api/v1/stats/today", headers=headers)
        assert response.status_code == 401


async def test_admin_login_is_rate_limited_per_ip(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, rate_limit_admin_login="2/minute", **ADMIN) as (
        _,
        client,
    ):
        codes = [
            (
                await client.post("/api/v1/admin/login", json={"username": "x", "password": "y"})
            ).status_code
            for _ in range(3)
        ]
    assert codes == [401, 401, 429]


def _cli(args: list[str], database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "XINTU_DATABASE_URL": database_url,
        "XINTU_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return subprocess.run(
        [sys.executable, "-m", "xintu.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_admin_create_then_login(
    make_client: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    created = _cli(
        ["admin", "create", "--username", "ops", "--password", "ops-password-1"],
        sqlite_url,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    weak = _cli(
        ["admin", "create", "--username", "ops2", "--password", "short"], sqlite_url, tmp_path
    )
    assert weak.returncode == 2
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.post(
            "/api/v1/admin/login", json={"username": "ops", "password": "ops-password-1"}
        )
        assert response.status_code == 200


@pytest.mark.parametrize("path", ["/admin", "/admin/static/app.js", "/admin/static/style.css"])
async def test_dashboard_files_are_served(
    make_client: AppFactory, sqlite_url: str, path: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.get(path)
    assert response.status_code == 200
    if path == "/admin":
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "http" not in response.text.replace("http://www.w3.org", "")
