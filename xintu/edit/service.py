"""Edit tasks: submit, read, cancel; the worker that runs them; the sweeper and cleanup.

The ``image_edit_tasks`` row is the truth. The queue only delivers task ids, and a
message may be lost or delivered twice without harm:

- a worker claims a task with one conditional UPDATE (queued → running, its worker id,
  ``attempts + 1``, a lease); a duplicate message finds nothing to claim;
- while it works it renews the lease; a worker that dies stops renewing, and the
  sweeper puts the task back to queued once the lease has expired (or fails it after
  ``XINTU_EDIT_MAX_ATTEMPTS``);
- the result is recorded by an UPDATE conditional on (status running, worker id,
  attempt): exactly one attempt can record it, and credits are charged in that same
  transaction with the task id as ledger reference, so at most once;
- the sweeper also resends messages for queued tasks whose message may have been lost.

Unlike request handlers, these functions own their transactions: work is enqueued only
after the row that describes it has been committed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, BinaryIO, cast

import orjson
from loguru import logger
from PIL import Image
from sqlalchemy import ColumnElement, Table, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from xintu.billing.credits import InsufficientCredits, change_credits, is_member
from xintu.config import Settings
from xintu.db import Database, insert_ignoring_duplicates, retry_on_conflict
from xintu.edit.local import run_local_edit
from xintu.edit.operations import (
    OperationKind,
    edit_cache_key,
    get_operation,
    parse_params,
    remote_prompt,
)
from xintu.edit.providers import NoEditorAnswered, RemoteEditChain
from xintu.edit.storage import EditStore
from xintu.errors import AppError, NotAuthenticated, NotFound
from xintu.images.budget import decode_budget, decoded
from xintu.images.validation import header_pixels, prepare_image
from xintu.inference.remote import image_payload
from xintu.models import ImageEditTask, UserCredits, WechatUser
from xintu.models.base import utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING)
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_SWEEP_BATCH = 500
_CREDITS = cast(Table, UserCredits.__table__)


class TooManyTasks(AppError):
    status_code = 429
    code = "too_many_tasks"
    detail = "Too many unfinished edit tasks; wait for some to finish"


class EditUnavailable(AppError):
    status_code = 503
    code = "edit_unavailable"
    detail = "No image-edit provider is configured for this operation"


class TaskNotFound(NotFound):
    code = "task_not_found"
    detail = "No such edit task"


class TaskFinished(AppError):
    status_code = 409
    code = "task_finished"
    detail = "The task has already finished and cannot be cancelled"


class ResultNotReady(AppError):
    status_code = 409
    code = "result_not_ready"
    detail = "The task has no result (yet)"


class ResultExpired(AppError):
    status_code = 410
    code = "result_expired"
    detail = "The result was deleted after its retention time"


class _PermanentFailure(Exception):
    """The task cannot succeed; retrying will not help."""


class _TransientFailure(Exception):
    """Worth another attempt later."""


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    id: str
    attempt: int
    user_id: int
    operation: str
    params: dict[str, Any]
    input_path: str | None
    credit_cost: int
    cache_key: str


Kick = Callable[[str], Awaitable[None]]


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def worker_pid(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])


class EditService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        store: EditStore,
        chain: RemoteEditChain,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.store = store
        self.chain = chain
        self.worker_id = worker_id or new_worker_id()
        self._kick: Kick | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.lease = timedelta(seconds=settings.edit_lease_s)
        # taskiq's in-memory broker starts every delivery at once; this bounds the edits
        # running in this process (the Redis receiver is bounded the same way).
        self._slots = asyncio.Semaphore(settings.edit_worker_concurrency)

    def bind_queue(self, kick: Kick) -> None:
        """Where task ids are sent (set once the broker exists)."""
        self._kick = kick

    # ----------------------------------------------------------------- requests

    async def submit(
        self, user_id: int, data: bytes, operation_id: str, params_raw: str | None
    ) -> ImageEditTask:
        """Create a task (202), or answer at once, free, when this user already made the same
        edit. Another user's identical result is reused by the worker instead (see
        ``_reuse_result``): queued and charged like any edit, nothing shows where it came from."""
        operation = get_operation(operation_id)
        params = parse_params(operation, params_raw)
        if operation.kind is OperationKind.remote and not self.chain.available:
            raise EditUnavailable()
        budget = decode_budget(self.settings.decode_budget_pixels)
        async with decoded(data, self.settings.max_image_pixels, budget) as prepared:
            image_hash = prepared.sha256
        cache_key = edit_cache_key(image_hash, operation.id, params)
        now = utcnow()
        task_id = str(uuid.uuid4())
        fields: dict[str, Any] = {
            "id": task_id,
            "user_id": user_id,
            "operation": operation.id,
            "params_json": orjson.dumps(params).decode(),
            "cache_key": cache_key,
            "attempts": 0,
            "credits_charged": 0,
            "created_at": now,
        }
        async with self.database.sessionmaker() as session, session.begin():
            cached = await self._cached_result(session, cache_key, now, user_id=user_id)
            if cached is not None:
                # Free and never queued: no limit or credit check to serialise.
                task = ImageEditTask(
                    **fields,
                    status=SUCCEEDED,
                    result_path=cached.result_path,
                    result_mime=cached.result_mime,
                    result_size=cached.result_size,
                    provider="cache",
                    credit_cost=0,
                    started_at=now,
                    finished_at=now,
                    expires_at=cached.expires_at,
                )
                session.add(task)
                return task
        cost = operation.cost(self.settings) if self.settings.billing_enabled else 0
        await self._ensure_credits_row(user_id)
        input_path: str | None = None
        try:
            # Written before the lock is taken, so the lock is held for queries only.
            input_path = await asyncio.to_thread(self.store.write_input, task_id, data)
            fields |= {
                "status": QUEUED,
                "input_path": input_path,
                "credit_cost": cost,
                "available_at": now,
                "kicked_at": now,
            }
            # A deadlock with a worker's update (MariaDB gap locks) loses the whole
            # transaction: it is run again, limits and credits checked afresh.
            task = await retry_on_conflict(partial(self._queue_if_allowed, fields, cost))
        except BaseException:
            self.store.delete(input_path)
            raise
        await self._send(task_id)
        return task

    async def _queue_if_allowed(self, fields: dict[str, Any], cost: int) -> ImageEditTask:
        """Insert the task if the user is under the task limit and can pay for it, all under
        the user's lock so that concurrent submits are counted one after another."""
        user_id = fields["user_id"]
        async with self.database.sessionmaker() as session, session.begin():
            # The first statement: on MariaDB the snapshot of the reads below must start
            # after the lock, and on SQLite the write lock is taken at once.
            balance = await self._lock_user(session, user_id)
            active = await session.scalar(
                select(func.count())
                .select_from(ImageEditTask)
                .where(ImageEditTask.user_id == user_id, ImageEditTask.status.in_(ACTIVE))
            )
            if (active or 0) >= self.settings.edit_max_queued_per_user:
                raise TooManyTasks(
                    f"At most {self.settings.edit_max_queued_per_user} unfinished edit "
                    "tasks per user"
                )
            if cost > 0 and not await is_member(session, user_id):
                await self._check_credits(session, user_id, balance, cost)
            queued = ImageEditTask(**fields)
            session.add(queued)
        return queued

    async def _ensure_credits_row(self, user_id: int) -> None:
        """Create the user's ``user_credits`` row (balance 0) if missing: the lock's target."""
        for _ in range(3):
            async with self.database.sessionmaker() as session:
                exists = await session.scalar(
                    select(UserCredits.user_id).where(UserCredits.user_id == user_id)
                )
                account = await session.scalar(
                    select(WechatUser.id).where(WechatUser.id == user_id)
                )
            if exists is not None:
                return
            if account is None:
                # A token that outlived its account: answer 401, not a foreign-key error.
                raise NotAuthenticated("This account no longer exists")
            try:
                async with self.database.sessionmaker() as session, session.begin():
                    await session.execute(
                        insert_ignoring_duplicates(
                            session.get_bind().dialect.name,
                            _CREDITS,
                            {"user_id": user_id, "balance": 0, "updated_at": utcnow()},
                            ["user_id"],
                        )
                    )
                return
            except DBAPIError as exc:
                # Concurrent first inserts of one key can deadlock on MariaDB; the
                # winner's row is there on the next look.
                logger.info("creating the credits row of user {} failed: {}", user_id, exc)
        raise RuntimeError(f"could not create the credits row of user {user_id}")

    async def _lock_user(self, session: AsyncSession, user_id: int) -> int:
        """Serialise this user's submits until the transaction ends; returns the balance.

        MariaDB and PostgreSQL: ``SELECT … FOR UPDATE`` on the ``user_credits`` row.
        SQLite has no row locks and ignores FOR UPDATE: a no-op UPDATE as the
        transaction's first statement takes the database write lock instead. Charging
        a finished edit updates the same row, so a charge cannot commit between the
        balance read here and the sum of held credits read after it.
        """
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(
                update(UserCredits)
                .where(UserCredits.user_id == user_id)
                .values(updated_at=UserCredits.updated_at)
                .execution_options(synchronize_session=False)
            )
        balance = await session.scalar(
            select(UserCredits.balance).where(UserCredits.user_id == user_id).with_for_update()
        )
        if balance is None:  # pragma: no cover - credits rows are never deleted
            raise RuntimeError(f"user {user_id} has no credits row")
        return int(balance)

    async def _cached_result(
        self, session: AsyncSession, cache_key: str, now: datetime, *, user_id: int | None
    ) -> ImageEditTask | None:
        """A live result of this edit: the user's own (``user_id``), or anyone's (None)."""
        statement = select(ImageEditTask).where(
            ImageEditTask.cache_key == cache_key,
            ImageEditTask.status == SUCCEEDED,
            ImageEditTask.result_path.is_not(None),
            ImageEditTask.expires_at > now + timedelta(minutes=1),
        )
        if user_id is not None:
            statement = statement.where(ImageEditTask.user_id == user_id)
        else:
            # A user's free repeat shares that user's file; only originals are copied.
            statement = statement.where(ImageEditTask.provider != "cache")
        rows = await session.scalars(statement.order_by(ImageEditTask.expires_at.desc()).limit(3))
        for row in rows:
            if row.result_path and self.store.exists(row.result_path):
                return row
        return None

    async def _check_credits(
        self, session: AsyncSession, user_id: int, balance: int, cost: int
    ) -> None:
        """402 unless the balance covers this task and the user's unfinished ones."""
        reserved = await session.scalar(
            select(func.coalesce(func.sum(ImageEditTask.credit_cost), 0)).where(
                ImageEditTask.user_id == user_id, ImageEditTask.status.in_(ACTIVE)
            )
        )
        if balance - int(reserved or 0) < cost:
            raise InsufficientCredits(
                f"This edit needs {cost} credits; the balance is {balance}"
                + (f" with {reserved} held by unfinished tasks" if reserved else "")
            )

    async def get(self, session: AsyncSession, user_id: int, task_id: str) -> ImageEditTask:
        """The caller's task; another user's task is 404 like a missing one."""
        task = await session.get(ImageEditTask, task_id)
        if task is None or task.user_id != user_id:
            raise TaskNotFound()
        return task

    async def list_tasks(
        self, session: AsyncSession, user_id: int, status: str | None, limit: int, offset: int
    ) -> list[ImageEditTask]:
        statement = select(ImageEditTask).where(ImageEditTask.user_id == user_id)
        if status:
            statement = statement.where(ImageEditTask.status == status)
        statement = (
            statement.order_by(ImageEditTask.created_at.desc(), ImageEditTask.id)
            .limit(limit)
            .offset(offset)
        )
        return list((await session.scalars(statement)).all())

    async def cancel(self, user_id: int, task_id: str) -> ImageEditTask:
        """Cancel a queued or running task; a running worker notices at its next renewal."""
        async with self.database.sessionmaker() as session, session.begin():
            task = await self.get(session, user_id, task_id)
            if task.status in (SUCCEEDED, FAILED):
                raise TaskFinished(f"The task has already {task.status}")
            if task.status == CANCELLED:
                return task
            now = utcnow()
            result = await session.execute(
                update(ImageEditTask)
                .where(ImageEditTask.id == task_id, ImageEditTask.status.in_(ACTIVE))
                .values(status=CANCELLED, finished_at=now, lease_until=None, input_path=None)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                await session.refresh(task)
                if task.status in (SUCCEEDED, FAILED):
                    raise TaskFinished(f"The task has already {task.status}")
                return task
            input_path = task.input_path
            await session.refresh(task)
        self.store.delete(input_path)
        return task

    async def open_result(
        self, session: AsyncSession, user_id: int, task_id: str
    ) -> tuple[ImageEditTask, BinaryIO]:
        """The task and an open handle on its result file.

        Opening (not just checking) the file before answering means the TTL cleanup can
        no longer break the download: deleting an open file leaves its data readable.
        """
        task = await self.get(session, user_id, task_id)
        if task.status != SUCCEEDED:
            raise ResultNotReady(f"The task is {task.status}")
        if not task.result_path:
            raise ResultExpired()
        try:
            handle = await asyncio.to_thread(self.store.open, task.result_path)
        except FileNotFoundError:
            raise ResultExpired() from None
        return task, handle

    # ------------------------------------------------------------------ worker

    async def run(self, task_id: str) -> None:
        """Execute one delivery of ``task_id``: claim, edit, record. Never raises."""
        async with self._slots:
            await self._run(task_id)

    async def _run(self, task_id: str) -> None:
        try:
            claimed = await self._claim(task_id)
        except Exception:
            logger.exception("could not claim edit task {}", task_id)
            return
        if claimed is None:
            return
        job = asyncio.create_task(self._execute(claimed))
        renewer = asyncio.create_task(self._renew_lease(claimed, job))
        try:
            outcome = await job
        except asyncio.CancelledError:
            if not job.cancelled():
                raise
            # The lease was lost or the task cancelled: someone else owns the outcome.
            logger.info("edit task {} attempt {} abandoned", task_id, claimed.attempt)
            return
        finally:
            renewer.cancel()
        await self._record(claimed, outcome)

    async def _claim(self, task_id: str) -> ClaimedTask | None:
        now = utcnow()
        async with self.database.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ImageEditTask)
                .where(
                    ImageEditTask.id == task_id,
                    ImageEditTask.status == QUEUED,
                    or_(ImageEditTask.available_at.is_(None), ImageEditTask.available_at <= now),
                )
                .values(
                    status=RUNNING,
                    worker_id=self.worker_id,
                    attempts=ImageEditTask.attempts + 1,
                    lease_until=now + self.lease,
                    started_at=func.coalesce(ImageEditTask.started_at, now),
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                return None
            task = await session.scalar(
                select(ImageEditTask).where(
                    ImageEditTask.id == task_id, ImageEditTask.worker_id == self.worker_id
                )
            )
            if task is None:  # pragma: no cover - lease lost within milliseconds
                return None
            return ClaimedTask(
                id=task.id,
                attempt=task.attempts,
                user_id=task.user_id,
                operation=task.operation,
                params=orjson.loads(task.params_json),
                input_path=task.input_path,
                credit_cost=task.credit_cost,
                cache_key=task.cache_key,
            )

    async def _renew_lease(self, claimed: ClaimedTask, job: asyncio.Task[Any]) -> None:
        interval = self.settings.edit_lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.database.sessionmaker() as session, session.begin():
                    result = await session.execute(
                        self._owned(claimed)
                        .values(lease_until=utcnow() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
                    owned = result.rowcount == 1  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the job
                logger.warning("could not renew the lease of {}: {}", claimed.id, exc)
                continue
            if not owned:
                job.cancel()
                return

    def _owned(self, claimed: ClaimedTask) -> Any:
        return update(ImageEditTask).where(
            ImageEditTask.id == claimed.id,
            ImageEditTask.status == RUNNING,
            ImageEditTask.worker_id == self.worker_id,
            ImageEditTask.attempts == claimed.attempt,
        )

    async def _execute(self, claimed: ClaimedTask) -> tuple[str, Any]:
        """("ok", (bytes, mime, provider)) | ("retry", message) | ("fail", message)."""
        try:
            if not claimed.input_path or not self.store.exists(claimed.input_path):
                raise _PermanentFailure("The uploaded image is no longer available")
            reused = await self._reuse_result(claimed)
            if reused is not None:
                return "ok", reused
            data = await asyncio.to_thread(self.store.read, claimed.input_path)
            operation = get_operation(claimed.operation)
            budget = decode_budget(self.settings.decode_budget_pixels)
            if operation.kind is OperationKind.local:
                async with budget.reserve(header_pixels(data)):
                    result = await asyncio.to_thread(
                        _local_edit,
                        data,
                        claimed.operation,
                        claimed.params,
                        self.settings.max_image_pixels,
                    )
                return "ok", (result, "image/jpeg", "local")
            async with budget.reserve(header_pixels(data)):
                mime, payload = await asyncio.to_thread(
                    _remote_payload, data, self.settings.max_image_pixels
                )
            try:
                edited = await self.chain.edit(
                    payload, mime, remote_prompt(claimed.operation, claimed.params)
                )
            except NoEditorAnswered as exc:
                if exc.transient:
                    raise _TransientFailure(str(exc)) from exc
                raise _PermanentFailure(str(exc)) from exc
            return "ok", (edited.data, edited.mime, edited.provider)
        except _TransientFailure as exc:
            return "retry", str(exc)
        except _PermanentFailure as exc:
            return "fail", str(exc)
        except AppError as exc:
            return "fail", exc.detail
        except Exception as exc:
            logger.exception("edit task {} crashed", claimed.id)
            return "fail", f"The edit failed: {type(exc).__name__}"

    async def _reuse_result(self, claimed: ClaimedTask) -> tuple[bytes, str, str] | None:
        """Another user's live result of the same edit, to be copied instead of redone: the
        saving stays, but the copy belongs to this task (its own file and expiry), is charged
        as this edit, and names the provider that made it, not the cache."""
        async with self.database.sessionmaker() as session:
            source = await self._cached_result(session, claimed.cache_key, utcnow(), user_id=None)
        if source is None or source.result_path is None or source.id == claimed.id:
            return None
        try:
            data = await asyncio.to_thread(self.store.read, source.result_path)
        except FileNotFoundError:
            return None  # cleaned up meanwhile: edit afresh
        return data, source.result_mime or "image/jpeg", source.provider or "local"

    async def _record(self, claimed: ClaimedTask, outcome: tuple[str, Any]) -> None:
        kind, value = outcome
        try:
            if kind == "ok":
                await self._record_success(claimed, *value)
            elif kind == "retry" and claimed.attempt < self.settings.edit_max_attempts:
                await self._record_retry(claimed, str(value))
            else:
                message = str(value)
                if kind == "retry":
                    message = f"Gave up after {claimed.attempt} attempts: {message}"
                await self._record_failure(claimed, message)
        except Exception:
            # The lease will expire and the sweeper will hand the task out again.
            logger.exception("could not record the outcome of edit task {}", claimed.id)

    async def _record_success(
        self, claimed: ClaimedTask, data: bytes, mime: str, provider: str
    ) -> None:
        result_path = await asyncio.to_thread(
            self.store.write_result, claimed.id, claimed.attempt, data, _EXTENSIONS.get(mime, "bin")
        )
        now = utcnow()
        recorded = False
        try:
            async with self.database.sessionmaker() as session, session.begin():
                result = await session.execute(
                    self._owned(claimed)
                    .values(
                        status=SUCCEEDED,
                        finished_at=now,
                        lease_until=None,
                        error=None,
                        input_path=None,
                        result_path=result_path,
                        result_mime=mime,
                        result_size=len(data),
                        provider=provider,
                        expires_at=now + timedelta(hours=self.settings.edit_result_ttl_hours),
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 0:  # type: ignore[attr-defined]
                    return
                recorded = True
                charged = await self._charge(session, claimed)
                if charged is None:
                    recorded = False
                    await session.execute(
                        update(ImageEditTask)
                        .where(ImageEditTask.id == claimed.id)
                        .values(
                            status=FAILED,
                            result_path=None,
                            result_mime=None,
                            result_size=None,
                            expires_at=None,
                            error="Not enough credits to pay for the edit",
                        )
                        .execution_options(synchronize_session=False)
                    )
                elif charged:
                    await session.execute(
                        update(ImageEditTask)
                        .where(ImageEditTask.id == claimed.id)
                        .values(credits_charged=charged)
                        .execution_options(synchronize_session=False)
                    )
        finally:
            if not recorded:
                self.store.delete(result_path)
        self.store.delete(claimed.input_path)

    async def _charge(self, session: AsyncSession, claimed: ClaimedTask) -> int | None:
        """Credits charged (0 when free), or None when the balance no longer covers it."""
        if claimed.credit_cost <= 0 or not self.settings.billing_enabled:
            return 0
        if await is_member(session, claimed.user_id):
            return 0
        try:
            await change_credits(
                session,
                claimed.user_id,
                -claimed.credit_cost,
                kind="edit",
                reason=f"edit {claimed.operation}",
                reference=claimed.id,
            )
        except InsufficientCredits:
            return None
        return claimed.credit_cost

    async def _record_retry(self, claimed: ClaimedTask, message: str) -> None:
        delay = self.settings.edit_retry_backoff_s * 2 ** (claimed.attempt - 1)
        async with self.database.sessionmaker() as session, session.begin():
            result = await session.execute(
                self._owned(claimed)
                .values(
                    status=QUEUED,
                    worker_id=None,
                    lease_until=None,
                    available_at=utcnow() + timedelta(seconds=delay),
                    kicked_at=None,
                    error=message[:500],
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                return
        logger.info("edit task {} retries in {:.1f}s: {}", claimed.id, delay, message)
        self._spawn(self._kick_later(claimed.id, delay))

    async def _record_failure(self, claimed: ClaimedTask, message: str) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            result = await session.execute(
                self._owned(claimed)
                .values(
                    status=FAILED,
                    finished_at=utcnow(),
                    lease_until=None,
                    input_path=None,
                    error=message[:500],
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                return
        self.store.delete(claimed.input_path)

    # --------------------------------------------------------- queue plumbing

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _kick_later(self, task_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._kick_if_due(task_id, resend_after=None)

    async def _send(self, task_id: str) -> None:
        if self._kick is None:
            return
        try:
            await self._kick(task_id)
        except Exception as exc:  # noqa: BLE001 - the sweeper resends it
            logger.warning("could not enqueue edit task {}: {}", task_id, exc)

    async def _kick_if_due(self, task_id: str, resend_after: timedelta | None) -> bool:
        """Send a message for a queued, claimable task unless one was sent recently."""
        now = utcnow()
        condition: ColumnElement[bool] = ImageEditTask.kicked_at.is_(None)
        if resend_after is not None:
            condition = or_(condition, ImageEditTask.kicked_at < now - resend_after)
        async with self.database.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ImageEditTask)
                .where(
                    ImageEditTask.id == task_id,
                    ImageEditTask.status == QUEUED,
                    or_(ImageEditTask.available_at.is_(None), ImageEditTask.available_at <= now),
                    condition,
                )
                .values(kicked_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                return False
        await self._send(task_id)
        return True

    async def sweep(self) -> int:
        """Requeue tasks whose worker's lease expired; resend lost messages. Returns kicks."""
        now = utcnow()
        async with self.database.sessionmaker() as session:
            expired = list(
                (
                    await session.execute(
                        select(ImageEditTask.id, ImageEditTask.attempts, ImageEditTask.input_path)
                        .where(ImageEditTask.status == RUNNING, ImageEditTask.lease_until < now)
                        .limit(_SWEEP_BATCH)
                    )
                ).all()
            )
        for task_id, attempts, input_path in expired:
            give_up = attempts >= self.settings.edit_max_attempts
            values: dict[str, Any] = (
                {
                    "status": FAILED,
                    "finished_at": now,
                    "input_path": None,
                    "error": f"The worker stopped responding {attempts} times",
                }
                if give_up
                else {"status": QUEUED, "available_at": now, "kicked_at": None}
            )
            async with self.database.sessionmaker() as session, session.begin():
                result = await session.execute(
                    update(ImageEditTask)
                    .where(
                        ImageEditTask.id == task_id,
                        ImageEditTask.status == RUNNING,
                        ImageEditTask.lease_until < now,
                    )
                    .values(worker_id=None, lease_until=None, **values)
                    .execution_options(synchronize_session=False)
                )
                changed = result.rowcount == 1  # type: ignore[attr-defined]
            if changed:
                logger.warning(
                    "edit task {} lost its worker (attempt {}); {}",
                    task_id,
                    attempts,
                    "failed" if give_up else "requeued",
                )
                if give_up:
                    self.store.delete(input_path)
        resend_after = self.lease
        async with self.database.sessionmaker() as session:
            due = list(
                (
                    await session.scalars(
                        select(ImageEditTask.id)
                        .where(
                            ImageEditTask.status == QUEUED,
                            or_(
                                ImageEditTask.available_at.is_(None),
                                ImageEditTask.available_at <= now,
                            ),
                            or_(
                                ImageEditTask.kicked_at.is_(None),
                                ImageEditTask.kicked_at < now - resend_after,
                            ),
                        )
                        .order_by(ImageEditTask.created_at)
                        .limit(_SWEEP_BATCH)
                    )
                ).all()
            )
        kicked = 0
        for task_id in due:
            kicked += await self._kick_if_due(task_id, resend_after)
        return kicked

    async def cleanup(self) -> int:
        """Delete results past their retention time. Returns how many were removed."""
        now = utcnow()
        async with self.database.sessionmaker() as session, session.begin():
            rows = list(
                (
                    await session.execute(
                        select(ImageEditTask.id, ImageEditTask.result_path).where(
                            ImageEditTask.result_path.is_not(None),
                            ImageEditTask.expires_at < now,
                        )
                    )
                ).all()
            )
            for task_id, _ in rows:
                await session.execute(
                    update(ImageEditTask)
                    .where(ImageEditTask.id == task_id)
                    .values(result_path=None)
                    .execution_options(synchronize_session=False)
                )
        for _, result_path in rows:
            self.store.delete(result_path)
        return len(rows)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _remote_payload(data: bytes, max_pixels: int) -> tuple[str, bytes]:
    """What a remote editor is sent; the decoded image is dropped on return."""
    return image_payload(prepare_image(data, max_pixels))


def _local_edit(data: bytes, operation_id: str, params: dict[str, Any], max_pixels: int) -> bytes:
    prepared = prepare_image(data, max_pixels)
    image: Image.Image = prepared.image
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    return run_local_edit(operation_id, image, params)
