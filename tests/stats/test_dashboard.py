"""The admin dashboard in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import insert

from tests.stats.conftest import ADMIN, log_row
from xintu.config import Settings
from xintu.db import create_engine
from xintu.main import create_app
from xintu.models import RequestLog

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (/usr/bin/chromium)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """The app under uvicorn in a thread on a free 127.0.0.1 port."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=sqlite_url,
        data_dir=tmp_path / "data",
        local_model_enabled=False,
        log_level="WARNING",
        **ADMIN,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while not server.started:
        assert thread.is_alive(), "server thread died"
        assert datetime.now(UTC) < deadline, "server did not start"
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def _seed(url: str) -> None:
    """A day of traffic: hits, remote calls with cost, local calls and failures."""
    now = datetime.now(UTC)
    rows = []
    categories = ["pets", "foods", "travel_scenery", "single_person", "screenshot", "other"]
    for day in range(7):
        for i in range(30 + 9 * day):
            created = now - timedelta(days=day, minutes=i)
            kind = i % 10
            category = categories[(i + day) % len(categories)]
            user = f"device-{i % 7}"
            if kind < 6:
                rows.append(
                    log_row(
                        created,
                        user_id=user,
                        category=category,
                        from_cache=True,
                        inference_method="cache",
                        endpoint="check-cache",
                        size_bytes=800_000,
                        processing_time_ms=2.0 + i % 5,
                    )
                )
            elif kind < 9:
                rows.append(
                    log_row(
                        created,
                        user_id=user,
                        category=category,
                        image_hash=f"{i:064x}",
                        input_tokens=1200,
                        output_tokens=30,
                        cost=Decimal("0.001452"),
                        processing_time_ms=900.0 + 37 * (i % 9),
                    )
                )
            elif day % 2:
                rows.append(
                    log_row(
                        created,
                        user_id=user,
                        category="idcard",
                        inference_method="local",
                        provider="local",
                        model="local-onnx",
                        processing_time_ms=160.0 + i,
                    )
                )
            else:
                rows.append(
                    log_row(
                        created,
                        user_id=None,
                        category=None,
                        inference_method=None,
                        status_code=415,
                        error_code="unsupported_media_type",
                        processing_time_ms=1.5,
                    )
                )
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(insert(RequestLog), rows)
    await engine.dispose()


async def test_dashboard_logs_in_and_shows_the_api_numbers(
    live_server: str, sqlite_url: str
) -> None:
    from playwright.async_api import async_playwright

    await _seed(sqlite_url)
    async with httpx.AsyncClient(base_url=live_server) as client:
        login = await client.post(
            "/api/v1/admin/login",
            json={"username": ADMIN["admin_username"], "password": ADMIN["admin_password"]},
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        today = (await client.get("/api/v1/stats/today", headers=headers)).json()["data"]
    assert today["total_requests"] > 0

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 900})
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    outside.append(request.url) if not request.url.startswith(live_server) else None
                ),
            )
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{live_server}/admin")
            await page.fill("#username", ADMIN["admin_username"])
            await page.fill("#password", "not the password")
            await page.click("#login-submit")
            await page.wait_for_selector("#login-error:not([hidden])", timeout=10_000)
            await page.fill("#password", ADMIN["admin_password"])
            await page.click("#login-submit")
            await page.wait_for_selector("body[data-loaded='true']", timeout=15_000)

            async def tile(key: str) -> str:
                return (await page.inner_text(f"#tile-{key}")).strip()

            assert await tile("total_requests") == f"{today['total_requests']:,}"
            assert await tile("cache_hits") == f"{today['cache_hits']:,}"
            assert await tile("cache_hit_rate") == f"{today['cache_hit_rate'] * 100:.1f}%"
            assert await tile("remote_calls") == str(today["remote_calls"])
            assert await tile("failed_requests") == str(today["failed_requests"])
            assert await tile("unique_users") == str(today["unique_users"])
            assert await tile("cost") == f"¥{today['cost']:.4f}"
            assert await page.locator("#chart-hit-rate svg rect").count() == 14
            assert await page.locator("#chart-categories .hbar").count() == 8
            # seven device labels and the anonymous caller known by IP
            assert await page.locator("#table-users tbody tr").count() == 8
            await page.screenshot(path=str(ARTIFACTS / "dashboard-laptop.png"), full_page=True)

            phone = await browser.new_page(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            await phone.goto(f"{live_server}/admin")
            await phone.fill("#username", ADMIN["admin_username"])
            await phone.fill("#password", ADMIN["admin_password"])
            await phone.click("#login-submit")
            await phone.wait_for_selector("body[data-loaded='true']", timeout=15_000)
            # Nothing wider than the screen: no sideways scrolling on a phone.
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390
            await phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        finally:
            await browser.close()
    assert outside == []
    assert errors == []
