"""The edit contract of DESIGN §4.5 over HTTP, on every configured database."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from typing import BinaryIO

import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import func, select, update

from tests.conftest import AppFactory
from tests.edit.conftest import (
    auth,
    edit_settings,
    eventually,
    new_user,
    photo,
    submit,
    wait_finished,
)
from tests.fixtures.assertions import assert_error
from xintu.edit import api as edit_api
from xintu.models import CreditLedger, ImageEditTask, UserCredits
from xintu.models.base import utcnow
from xintu.users.security import create_access_token


async def balance(app: FastAPI, user_id: int) -> int:
    async with app.state.db.sessionmaker() as session:
        value = await session.scalar(
            select(UserCredits.balance).where(UserCredits.user_id == user_id)
        )
    return int(value or 0)


async def ledger_rows(app: FastAPI, user_id: int) -> list[CreditLedger]:
    async with app.state.db.sessionmaker() as session:
        rows = await session.scalars(select(CreditLedger).where(CreditLedger.user_id == user_id))
        return list(rows.all())


async def test_operations_lists_local_and_remote_with_params_and_cost(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, billing_enabled=True, **edit_settings()) as (
        app,
        client,
    ):
        _, headers = await new_user(app)
        response = await client.get("/api/v1/edit/operations", headers=headers)
    assert response.status_code == 200
    operations = {op["id"]: op for op in response.json()["operations"]}
    assert {"enhance", "cartoon", "sketch", "id_photo"} <= operations.keys()
    assert operations["id_photo"]["kind"] == "local"
    assert operations["id_photo"]["available"] is True
    assert operations["id_photo"]["credit_cost"] == 1
    size = next(p for p in operations["id_photo"]["params"] if p["name"] == "size")
    assert size["enum"] == ["1inch", "2inch"]
    assert size["default"] == "1inch"
    assert operations["prompt_edit"]["kind"] == "remote"
    assert operations["prompt_edit"]["available"] is False  # no provider key configured
    assert operations["prompt_edit"]["credit_cost"] == 10


async def test_edit_endpoints_need_a_user_token(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url) as (app, client):
        anonymous = await client.get("/api/v1/edit/operations")
        admin_token = create_access_token(
            "admin", 1, app.state.settings.jwt_secret, timedelta(hours=1)
        )
        admin = await client.get(
            "/api/v1/edit/tasks", headers={"Authorization": f"Bearer {admin_token}"}
        )
        posted = await submit(client, {}, photo(), "enhance")
    assert_error(anonymous, 401, "not_authenticated")
    assert_error(admin, 403, "forbidden")
    assert_error(posted, 401, "not_authenticated")


async def test_a_token_whose_account_is_gone_gets_401(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        response = await submit(client, auth(app, 987654), photo(), "enhance")
    assert_error(response, 401, "not_authenticated")


async def test_local_edit_runs_to_success_and_streams_the_result(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, photo(size=(200, 150)), "sketch")
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert body["from_cache"] is False
        task = await wait_finished(client, headers, body["task_id"])
        assert task["status"] == "succeeded", task
        assert task["operation"] == "sketch"
        assert task["params"] == {"blur": 10.0}
        assert task["result_url"] == f"/api/v1/edit/tasks/{body['task_id']}/result"
        assert task["started_at"]
        assert task["finished_at"]
        assert task["error"] is None
        result = await client.get(task["result_url"], headers=headers)
        listed = await client.get("/api/v1/edit/tasks", headers=headers)
        inputs = list((app.state.settings.data_dir / "edit" / "inputs").iterdir())
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/jpeg"
    edited = Image.open(io.BytesIO(result.content))
    assert edited.size == (200, 150)
    assert [item["task_id"] for item in listed.json()["items"]] == [body["task_id"]]
    assert inputs == []  # the input is deleted once the task finished


async def test_identical_request_answers_from_the_edit_cache_without_charging(
    make_client: AppFactory, database_url: str
) -> None:
    settings = edit_settings(billing_enabled=True)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=5)
        image = photo(seed=3)
        first = await submit(client, headers, image, "cartoon", json.dumps({"levels": 8}))
        await wait_finished(client, headers, first.json()["task_id"])
        assert await balance(app, user_id) == 4
        # Same image, same canonical params ({} means the defaults): answered at once.
        again = await submit(client, headers, image, "cartoon", "{}")
        different = await submit(client, headers, image, "cartoon", '{"levels": 4}')
        assert again.status_code == 202
        assert again.json()["status"] == "succeeded"
        assert again.json()["from_cache"] is True
        assert different.json()["status"] == "queued"
        cached = await client.get(f"/api/v1/edit/tasks/{again.json()['task_id']}", headers=headers)
        first_result = await client.get(
            f"/api/v1/edit/tasks/{first.json()['task_id']}/result", headers=headers
        )
        cached_result = await client.get(cached.json()["result_url"], headers=headers)
        await wait_finished(client, headers, different.json()["task_id"])
        assert await balance(app, user_id) == 3  # the first and the different one, not the hit
    assert cached.json()["credits_charged"] == 0
    assert cached_result.content == first_result.content


async def test_attack_another_users_edit_is_a_charged_copy_that_reveals_nothing(
    make_client: AppFactory, database_url: str
) -> None:
    """Issue 11: the edit cache handed user A's finished edit to anyone submitting the same
    image, operation and params, for free and marked as a cache answer. Now B's task is
    queued and charged like a fresh edit, B downloads a copy made for B's own task, and no
    answer differs from a fresh edit's."""
    settings = edit_settings(billing_enabled=True)
    async with make_client(database_url=database_url, **settings) as (app, client):
        owner_id, owner = await new_user(app, credits=5)
        other_id, other = await new_user(app, credits=5)
        image = photo(seed=4)
        first = (await submit(client, owner, image, "cartoon", '{"levels": 8}')).json()
        await wait_finished(client, owner, first["task_id"])
        submitted = await submit(client, other, image, "cartoon", '{"levels": 8}')
        assert submitted.status_code == 202
        assert (submitted.json()["status"], submitted.json()["from_cache"]) == ("queued", False)
        task = await wait_finished(client, other, submitted.json()["task_id"])
        assert task["status"] == "succeeded"
        assert (task["from_cache"], task["credits_charged"]) == (False, 1)
        copy = await client.get(task["result_url"], headers=other)
        original = await client.get(f"/api/v1/edit/tasks/{first['task_id']}/result", headers=owner)
        assert copy.status_code == 200
        assert copy.content == original.content
        assert await balance(app, other_id) == 4
        assert await balance(app, owner_id) == 4
        # The owner's task is still the owner's alone; each task has its own file.
        stolen = await client.get(f"/api/v1/edit/tasks/{first['task_id']}/result", headers=other)
        assert_error(stolen, 404, "task_not_found")
        async with app.state.db.sessionmaker() as session:
            paths = set(
                (
                    await session.scalars(
                        select(ImageEditTask.result_path).where(
                            ImageEditTask.id.in_([first["task_id"], task["task_id"]])
                        )
                    )
                ).all()
            )
        assert len(paths) == 2
        # Deleting the owner's result later does not take the copy away.
        async with app.state.db.sessionmaker() as session, session.begin():
            await session.execute(
                update(ImageEditTask)
                .where(ImageEditTask.id == first["task_id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert await app.state.edit.cleanup() == 1
        assert (await client.get(task["result_url"], headers=other)).content == copy.content
        # Without credits the same request is refused like any paid edit.
        poor_id, poor = await new_user(app)
        assert_error(
            await submit(client, poor, image, "cartoon", '{"levels": 8}'),
            402,
            "insufficient_credits",
        )
        assert await balance(app, poor_id) == 0


async def test_another_users_task_is_not_found(make_client: AppFactory, database_url: str) -> None:
    async with make_client(database_url=database_url, **edit_settings()) as (app, client):
        _, owner = await new_user(app)
        _, stranger = await new_user(app)
        task_id = (await submit(client, owner, photo(), "enhance")).json()["task_id"]
        await wait_finished(client, owner, task_id)
        status = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=stranger)
        result = await client.get(f"/api/v1/edit/tasks/{task_id}/result", headers=stranger)
        cancel = await client.delete(f"/api/v1/edit/tasks/{task_id}", headers=stranger)
        listed = await client.get("/api/v1/edit/tasks", headers=stranger)
    for response in (status, result, cancel):
        assert_error(response, 404, "task_not_found")
    assert listed.json()["items"] == []


async def test_cancel_a_running_task_discards_its_result_and_charges_nothing(
    make_client: AppFactory, database_url: str, fake_edit
) -> None:
    fake_edit.delay_s, fake_edit.delay_first = 1.0, 1
    settings = edit_settings(fake_edit, billing_enabled=True)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=50)
        response = await submit(client, headers, photo(), "prompt_edit", '{"prompt": "sunny"}')
        task_id = response.json()["task_id"]

        async def running() -> bool:
            got = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=headers)
            return bool(got.json()["status"] == "running")

        await eventually(running)
        cancelled = await client.delete(f"/api/v1/edit/tasks/{task_id}", headers=headers)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        # The provider answers after the cancel: the worker must not record it.
        await eventually(lambda: _calls_done(fake_edit))
        await app.state.edit.sweep()
        final = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=headers)
        result = await client.get(f"/api/v1/edit/tasks/{task_id}/result", headers=headers)
        again = await client.delete(f"/api/v1/edit/tasks/{task_id}", headers=headers)
        assert await balance(app, user_id) == 50
    assert final.json()["status"] == "cancelled"
    assert_error(result, 409, "result_not_ready")
    assert again.status_code == 200  # cancelling twice is harmless


async def _calls_done(fake) -> bool:  # type: ignore[no-untyped-def]
    return sum(fake.calls.values()) >= 1


async def test_cancel_a_finished_task_is_a_conflict(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        task_id = (await submit(client, headers, photo(), "enhance")).json()["task_id"]
        await wait_finished(client, headers, task_id)
        response = await client.delete(f"/api/v1/edit/tasks/{task_id}", headers=headers)
    assert_error(response, 409, "task_finished")


async def test_results_past_their_ttl_are_removed_by_the_cleanup(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        image = photo(seed=9)
        task_id = (await submit(client, headers, image, "enhance")).json()["task_id"]
        await wait_finished(client, headers, task_id)
        async with app.state.db.sessionmaker() as session:
            task = await session.get(ImageEditTask, task_id)
            assert task is not None
            assert task.result_path
            assert task.expires_at
            result_file = app.state.settings.data_dir / task.result_path
            ttl = task.expires_at - task.finished_at
        assert result_file.exists()
        assert abs(ttl - timedelta(hours=24)) < timedelta(seconds=1)
        assert await app.state.edit.cleanup() == 0  # not yet expired
        async with app.state.db.sessionmaker() as session, session.begin():
            await session.execute(
                update(ImageEditTask)
                .where(ImageEditTask.id == task_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert await app.state.edit.cleanup() == 1
        result = await client.get(f"/api/v1/edit/tasks/{task_id}/result", headers=headers)
        status = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=headers)
        # An expired result is no longer an edit cache entry.
        again = await submit(client, headers, image, "enhance")
    assert not result_file.exists()
    assert_error(result, 410, "result_expired")
    assert status.json()["result_url"] is None
    assert again.json()["status"] == "queued"


async def test_credits_are_charged_once_on_success_and_members_are_free(
    make_client: AppFactory, database_url: str
) -> None:
    settings = edit_settings(billing_enabled=True, edit_local_cost=2)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=3)
        member_id, member_headers = await new_user(app, member=True)
        task_id = (await submit(client, headers, photo(seed=1), "sketch")).json()["task_id"]
        await wait_finished(client, headers, task_id)
        # Replaying the delivery of a finished task changes nothing.
        await app.state.edit.run(task_id)
        refused = await submit(client, headers, photo(seed=2), "sketch")
        member_task = await submit(client, member_headers, photo(seed=2), "sketch")
        await wait_finished(client, member_headers, member_task.json()["task_id"])
        assert await balance(app, user_id) == 1
        rows = await ledger_rows(app, user_id)
        assert await ledger_rows(app, member_id) == []
        status = await client.get(f"/api/v1/edit/tasks/{task_id}", headers=headers)
    assert [(row.kind, row.delta, row.reference) for row in rows] == [("edit", -2, task_id)]
    assert status.json()["credits_charged"] == 2
    assert_error(refused, 402, "insufficient_credits")


async def test_unfinished_tasks_hold_credits_at_submit(
    make_client: AppFactory, sqlite_url: str, fake_edit
) -> None:
    fake_edit.delay_s, fake_edit.delay_first = 0.5, 1
    settings = edit_settings(fake_edit, billing_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app, credits=15)
        first = await submit(client, headers, photo(seed=1), "restyle", '{"style": "anime"}')
        second = await submit(client, headers, photo(seed=2), "restyle", '{"style": "anime"}')
        await wait_finished(client, headers, first.json()["task_id"])
    assert first.status_code == 202
    assert_error(second, 402, "insufficient_credits")


async def test_per_user_limit_on_unfinished_tasks(
    make_client: AppFactory, sqlite_url: str, fake_edit
) -> None:
    fake_edit.modes["openai"] = fake_edit.modes["dashscope"] = "timeout"
    settings = edit_settings(fake_edit, edit_max_queued_per_user=2, edit_remote_timeout_s=30)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app)
        _, other = await new_user(app)
        codes = [
            (await submit(client, headers, photo(seed=i), "prompt_edit", '{"prompt": "x"}'))
            for i in range(3)
        ]
        others = await submit(client, other, photo(seed=7), "prompt_edit", '{"prompt": "x"}')
        for response in codes[:2]:
            await client.delete(f"/api/v1/edit/tasks/{response.json()['task_id']}", headers=headers)
        after_cancel = await submit(client, headers, photo(seed=8), "enhance")
        await client.delete(f"/api/v1/edit/tasks/{others.json()['task_id']}", headers=other)
    assert [r.status_code for r in codes[:2]] == [202, 202]
    assert_error(codes[2], 429, "too_many_tasks")
    assert others.status_code == 202
    assert after_cancel.status_code == 202


async def test_bad_submissions_are_clear_4xx_errors_and_leave_nothing_behind(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        unknown = await submit(client, headers, photo(), "levitate")
        bad_json = await submit(client, headers, photo(), "enhance", "{not json")
        not_object = await submit(client, headers, photo(), "enhance", "[1]")
        out_of_range = await submit(client, headers, photo(), "enhance", '{"strength": 7}')
        extra = await submit(client, headers, photo(), "id_photo", '{"size": "3inch"}')
        not_image = await submit(client, headers, b"hello, not an image", "enhance")
        broken = await submit(client, headers, photo()[:200], "enhance")
        no_file = await client.post(
            "/api/v1/edit/tasks",
            data={"operation": "enhance"},
            headers=headers,
            files={"other": ("a.txt", b"x", "text/plain")},
        )
        remote_unconfigured = await submit(
            client, headers, photo(), "prompt_edit", '{"prompt": "x"}'
        )
        missing = await client.get("/api/v1/edit/tasks/nope", headers=headers)
        async with app.state.db.sessionmaker() as session:
            rows = await session.scalar(select(func.count()).select_from(ImageEditTask))
        inputs = list((app.state.settings.data_dir / "edit" / "inputs").iterdir())
    assert_error(unknown, 422, "unknown_operation")
    for response in (bad_json, not_object, out_of_range, extra):
        assert_error(response, 422, "invalid_params")
    assert_error(not_image, 415, "unsupported_media_type")
    assert_error(broken, 400, "invalid_image")
    assert_error(no_file, 422, "missing_image")
    assert_error(remote_unconfigured, 503, "edit_unavailable")
    assert_error(missing, 404, "task_not_found")
    assert rows == 0
    assert inputs == []


async def test_concurrent_submits_never_exceed_the_per_user_limit(
    make_client: AppFactory, database_url: str, fake_edit
) -> None:
    fake_edit.modes["openai"] = fake_edit.modes["dashscope"] = "timeout"
    settings = edit_settings(fake_edit, edit_max_queued_per_user=3, edit_remote_timeout_s=30)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app)
        images = [photo(seed=i) for i in range(20)]
        responses = await asyncio.gather(
            *(submit(client, headers, image, "prompt_edit", '{"prompt": "x"}') for image in images)
        )
        accepted = [r.json()["task_id"] for r in responses if r.status_code == 202]
        async with app.state.db.sessionmaker() as session:
            rows = await session.scalar(
                select(func.count())
                .select_from(ImageEditTask)
                .where(ImageEditTask.user_id == user_id)
            )
        inputs = len(list((app.state.settings.data_dir / "edit" / "inputs").iterdir()))
        for task_id in accepted:
            await client.delete(f"/api/v1/edit/tasks/{task_id}", headers=headers)
    assert len(accepted) == 3
    for response in responses:
        if response.status_code != 202:
            assert_error(response, 429, "too_many_tasks")
    assert rows == 3
    assert inputs == 3  # the rejected submits left no file


async def test_concurrent_paid_submits_never_exceed_the_balance(
    make_client: AppFactory, database_url: str
) -> None:
    settings = edit_settings(billing_enabled=True, edit_local_cost=5)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await new_user(app, credits=10)
        images = [photo(seed=20 + i) for i in range(10)]
        responses = await asyncio.gather(
            *(submit(client, headers, image, "sketch") for image in images)
        )
        accepted = [r.json()["task_id"] for r in responses if r.status_code == 202]
        finished = [await wait_finished(client, headers, task_id) for task_id in accepted]
        final_balance = await balance(app, user_id)
        rows = await ledger_rows(app, user_id)
    assert len(accepted) == 2
    for response in responses:
        if response.status_code != 202:
            assert_error(response, 402, "insufficient_credits")
    assert [task["status"] for task in finished] == ["succeeded", "succeeded"]
    assert final_balance == 0
    assert sorted(row.reference or "" for row in rows) == sorted(accepted)


@pytest.mark.parametrize("in_memory_bytes", [4 * 1024 * 1024, 0], ids=["whole", "streamed"])
async def test_a_result_deleted_while_it_is_downloaded_is_still_sent_whole(
    make_client: AppFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, in_memory_bytes: int
) -> None:
    monkeypatch.setattr(edit_api, "RESULT_IN_MEMORY_BYTES", in_memory_bytes)
    monkeypatch.setattr(edit_api, "_CHUNK_BYTES", 1024)
    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        task_id = (await submit(client, headers, photo(size=(400, 300)), "enhance")).json()[
            "task_id"
        ]
        await wait_finished(client, headers, task_id)
        store = app.state.edit.store
        async with app.state.db.sessionmaker() as session:
            task = await session.get(ImageEditTask, task_id)
            assert task is not None
            assert task.result_path
            expected = store.read(task.result_path)
        opened = store.open

        def open_then_cleanup(relative: str) -> BinaryIO:
            handle = opened(relative)
            store.delete(relative)  # the TTL cleanup wins the race right after the open
            return handle

        monkeypatch.setattr(store, "open", open_then_cleanup)
        during = await client.get(f"/api/v1/edit/tasks/{task_id}/result", headers=headers)
        after = await client.get(f"/api/v1/edit/tasks/{task_id}/result", headers=headers)
    assert during.status_code == 200
    assert during.headers["content-type"] == "image/jpeg"
    assert int(during.headers["content-length"]) == len(expected) > 1024
    assert during.content == expected
    assert_error(after, 410, "result_expired")
