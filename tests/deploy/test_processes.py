"""The service as production runs it: plain uvicorn, Gunicorn with two Uvicorn workers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.servers import BIN, ROOT, free_port, service_env, start, wait_exit, wait_healthy
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from xintu.categories import Category

pytestmark = pytest.mark.timeout(240)


def llm_env(fake: FakeLLM) -> dict[str, str]:
    return {"providers": "openai", "openai_api_key": "sk-test", "openai_base_url": fake.base_url}


async def classify(client: httpx.AsyncClient, category: Category, seed: int) -> httpx.Response:
    image = make_image(category, seed=seed)
    return await client.post("/api/v1/classify", files={"image": ("a.jpg", image, "image/jpeg")})


def worker_pids(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


async def test_plain_uvicorn_on_a_fresh_database_migrates_and_classifies(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    port = free_port()
    log_file = tmp_path / "logs" / "xintu.log"
    env = service_env(tmp_path / "data", **llm_env(fake_llm), log_file=str(log_file), log_json="1")
    output = tmp_path / "server.out"
    server = start(
        [sys.executable, "-m", "uvicorn", "xintu.main:app", "--port", str(port)], env, output
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", server, output)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            response = await classify(client, Category.foods, seed=1)
            health = (await client.get("/api/v1/health")).json()
    finally:
        server.terminate()
        code = await wait_exit(server, 30)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["category"] == "foods"
    assert health["status"] == "ok"
    # Uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status shows it.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output.read_text()
    # The file sink got the same JSON lines as the console.
    records = [json.loads(line)["record"] for line in log_file.read_text().splitlines()]
    assert any("Application startup complete" in record["message"] for record in records)


async def test_gunicorn_two_workers_serve_then_drain_on_sigterm(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    port = free_port()
    env = service_env(
        tmp_path / "data", **llm_env(fake_llm), host="127.0.0.1", port=str(port), workers="2"
    )
    output = tmp_path / "gunicorn.out"
    # Both workers start on an empty database at once: the migration lock serialises them.
    master = start(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "xintu.main:app"],
        env,
        output,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base_url, master, output)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            # Fresh connections per request spread them over both workers.
            responses = await asyncio.gather(
                *(classify(client, Category.pets, seed=seed) for seed in range(20))
            )
            assert [r.status_code for r in responses] == [200] * 20
            assert len(worker_pids(master.pid)) == 2

            # A request in flight when SIGTERM arrives still gets its answer.
            fake_llm.delay_s = 1.0
            calls = fake_llm.calls
            in_flight = asyncio.create_task(classify(client, Category.foods, seed=100))
            deadline = time.monotonic() + 20
            while fake_llm.calls == calls and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            master.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            response = await in_flight
            code = await wait_exit(master, 30)
            drain_s = time.monotonic() - stopped_at
    finally:
        if master.poll() is None:
            master.kill()
    assert response.status_code == 200, response.text
    assert response.json()["data"]["category"] == "foods"
    assert code == 0, output.read_text()
    assert drain_s < 30  # gunicorn.conf.py's graceful_timeout
    assert "Worker exiting" in output.read_text() or "Shutting down" in output.read_text()
