"""The queue (taskiq) that delivers edit task ids to workers, and the periodic jobs.

Without Redis an in-memory broker runs the tasks inside the service process. With
``XINTU_REDIS_URL`` the service only sends ids to a Redis list and ``xintu worker``
processes, on any number of hosts, take them. The queue is only a delivery mechanism:
what a task is and who runs it lives in the database (see service.py).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
from loguru import logger
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker

from xintu.background import GRACE_S, finish_or_cancel, run_every, run_in_background
from xintu.config import Settings
from xintu.db import Database
from xintu.edit.providers import build_edit_chain
from xintu.edit.service import EditService
from xintu.edit.storage import EditStore

TASK_NAME = "xintu.edit.run"


def create_broker(settings: Settings) -> AsyncBroker:
    if settings.redis_url:
        return ListQueueBroker(settings.redis_url, queue_name=settings.edit_queue_name)
    return InMemoryBroker(
        max_async_tasks=settings.edit_worker_concurrency,
        max_stored_results=1,
        sync_tasks_pool_size=1,
        propagate_exceptions=False,
    )


def connect(service: EditService, broker: AsyncBroker) -> None:
    """Register the task on the broker and let the service send through it."""

    async def run_edit_task(task_id: str) -> None:
        await service.run(task_id)

    decorated = broker.register_task(run_edit_task, task_name=TASK_NAME)

    async def kick(task_id: str) -> None:
        await decorated.kiq(task_id)

    service.bind_queue(kick)


async def start_edit_runtime(
    settings: Settings,
    database: Database,
    http: aiohttp.ClientSession,
    stack: AsyncExitStack,
    *,
    worker: bool,
) -> EditService:
    """The edit service with its queue, sweeper and cleanup, closed by ``stack``.

    ``worker`` makes this process consume the Redis queue (``xintu worker``); the
    in-memory broker always executes in-process.
    """
    service = EditService(
        settings, database, EditStore(settings.data_dir), build_edit_chain(settings, http)
    )
    stack.push_async_callback(service.aclose)
    broker = create_broker(settings)
    connect(service, broker)
    if worker:
        broker.is_worker_process = True
    await broker.startup()
    stack.push_async_callback(broker.shutdown)
    if worker and settings.redis_url:
        run_in_background(
            stack,
            run_receiver_task(
                broker,
                max_async_tasks=settings.edit_worker_concurrency,
                sync_workers=1,
                propagate_exceptions=False,
            ),
        )
    if isinstance(broker, InMemoryBroker):

        async def wait_for_running() -> None:
            # In-flight edits get a grace period to finish; those cancelled after it are
            # redone elsewhere when their leases expire.
            await finish_or_cancel(list(broker._running_tasks), GRACE_S)

        stack.push_async_callback(wait_for_running)
    run_every(stack, settings.edit_sweep_interval_s, service.sweep, "edit sweep")
    run_every(stack, settings.edit_cleanup_interval_s, service.cleanup, "edit cleanup")
    return service


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """``xintu worker``: consume edit tasks from Redis until ``stop`` is set."""
    if not settings.redis_url:
        raise RuntimeError(
            "XINTU_REDIS_URL is not set: without Redis, edits run inside the service process"
        )
    async with AsyncExitStack() as stack:
        database = Database(settings.database_url)
        stack.push_async_callback(database.dispose)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.remote_max_concurrency)
        )
        stack.push_async_callback(http.close)
        service = await start_edit_runtime(settings, database, http, stack, worker=True)
        logger.info(
            "edit worker {} serving queue {} with concurrency {}",
            service.worker_id,
            settings.edit_queue_name,
            settings.edit_worker_concurrency,
        )
        await stop.wait()
        logger.info("edit worker {} stopping", service.worker_id)
