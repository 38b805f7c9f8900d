"""Background work of billing: closing expired orders."""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger

from xintu.billing.service import Billing, close_expired_orders


class ExpiredOrderCloser:
    """Every ``interval_s``, close pending orders past their expiry (here and at WeChat Pay).
    Safe with several app instances: each close is a conditional UPDATE."""

    def __init__(self, billing: Billing, interval_s: float) -> None:
        self._billing = billing
        self._interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="expired-order-closer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                closed = await close_expired_orders(self._billing)
                if closed:
                    logger.info("closed {} expired orders", closed)
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                logger.exception("closing expired orders failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
