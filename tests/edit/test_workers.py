"""Separate `xintu worker` processes on Redis: nothing lost, nothing done twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.conftest import AppFactory
from tests.edit.conftest import edit_settings, eventually, new_user, photo, submit
from tests.fixtures.fake_image_edit import FakeImageEdit
from xintu.edit.service import worker_pid
from xintu.models import CreditLedger, ImageEditTask

ROOT = Path(__file__).resolve().parents[2]


def worker_env(settings: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XINTU_")}
    env["PYTHONPATH"] = str(ROOT)
    for key, value in settings.items():
        env[f"XINTU_{key.upper()}"] = str(value)
    return env


@contextmanager
def workers(
    count: int, settings: dict[str, Any], cwd: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = worker_env({"log_level": "WARNING", **settings})
    logs = [open(cwd / f"worker{index}.log", "wb") for index in range(count)]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "xintu.cli", "worker"],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for log in logs
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


async def test_two_workers_run_a_hundred_tasks_each_exactly_once(
    make_client: AppFactory, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = edit_settings(
        redis_url=redis_url,
        billing_enabled=True,
        edit_max_queued_per_user=1000,
        edit_lease_s=5.0,
        edit_worker_concurrency=2,
        edit_queue_name=f"xintu:edit:{tmp_path.name}",
    )
    shared = {**settings, "database_url": database_url, "data_dir": tmp_path / "data"}
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=1000)
        with workers(2, shared, tmp_path):
            task_ids = []
            for seed in range(100):
                response = await submit(client, headers, photo(seed=seed, size=(96, 64)), "sketch")
                assert response.status_code == 202, response.text
                task_ids.append(response.json()["task_id"])

            async def all_finished() -> list[ImageEditTask] | None:
                async with app.state.db.sessionmaker() as session:
                    rows = list((await session.scalars(select(ImageEditTask))).all())
                done = [row for row in rows if row.status not in ("queued", "running")]
                return rows if len(done) == len(task_ids) else None

            rows = await eventually(all_finished, timeout_s=90, interval_s=0.2)
        async with app.state.db.sessionmaker() as session:
            charges = dict(
                (
                    await session.execute(
                        select(CreditLedger.reference, func.count())
                        .where(CreditLedger.user_id == user_id)
                        .group_by(CreditLedger.reference)
                    )
                ).all()
            )
        results = list((tmp_path / "data" / "edit" / "results").iterdir())
        inputs = list((tmp_path / "data" / "edit" / "inputs").iterdir())
    assert sorted(row.id for row in rows) == sorted(task_ids)
    assert {row.status for row in rows} == {"succeeded"}
    assert {row.attempts for row in rows} == {1}
    assert len({worker_pid(row.worker_id or "") for row in rows}) == 2  # both workers worked
    assert charges == dict.fromkeys(task_ids, 1)  # charged exactly once each
    assert len(results) == 100
    assert inputs == []


async def test_a_task_of_a_killed_worker_completes_on_the_other_after_the_lease(
    make_client: AppFactory,
    sqlite_url: str,
    redis_url: str,
    tmp_path: Path,
    fake_edit: FakeImageEdit,
) -> None:
    # The first provider call hangs long enough for us to kill the worker making it.
    fake_edit.delay_s, fake_edit.delay_first = 30.0, 1
    settings = edit_settings(
        fake_edit,
        redis_url=redis_url,
        billing_enabled=True,
        edit_providers="openai",
        edit_lease_s=1.5,
        edit_worker_concurrency=1,
        edit_queue_name=f"xintu:edit:{tmp_path.name}",
    )
    shared = {**settings, "database_url": sqlite_url, "data_dir": tmp_path / "data"}
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=100)
        with workers(2, shared, tmp_path) as processes:
            response = await submit(client, headers, photo(), "prompt_edit", '{"prompt": "x"}')
            task_id = response.json()["task_id"]

            async def task_row() -> ImageEditTask | None:
                async with app.state.db.sessionmaker() as session:
                    return await session.get(ImageEditTask, task_id)

            async def running() -> ImageEditTask | None:
                row = await task_row()
                return (
                    row if row and row.status == "running" and fake_edit.calls["openai"] else None
                )

            first = await eventually(running, timeout_s=30)
            victim = next(p for p in processes if p.pid == worker_pid(first.worker_id or ""))
            victim.send_signal(signal.SIGKILL)
            victim.wait()

            async def finished() -> ImageEditTask | None:
                row = await task_row()
                return row if row and row.status not in ("queued", "running") else None

            final = await eventually(finished, timeout_s=30)
        async with app.state.db.sessionmaker() as session:
            charges = (
                await session.scalars(select(CreditLedger).where(CreditLedger.user_id == user_id))
            ).all()
    assert final.status == "succeeded", final.error
    assert final.attempts == 2
    assert worker_pid(final.worker_id or "") != victim.pid
    assert fake_edit.calls["openai"] == 2
    assert [(row.reference, row.delta) for row in charges] == [(task_id, -10)]
