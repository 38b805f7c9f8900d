"""A process-wide budget of decoded pixels in flight.

A 6,300×6,300 PNG is 160 KB on the wire and 160 MB decoded; a batch of them decoded at once
would take the process past any memory a host gives it. Every full decode first reserves
its pixel count, read from the header, and holds it until the decoded image is dropped;
work beyond the budget waits in arrival order. An image larger than the whole budget (the
budget set below the pixel limit) runs alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from xintu.images.validation import check_header, prepare_image
from xintu.inference.base import PreparedImage


class DecodeBudget:
    """A first-come, first-served weighted semaphore counted in pixels."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def reserve(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget for the block; waits while it is spent."""
        granted = await self._acquire(min(max(pixels, 1), self.capacity))
        try:
            yield
        finally:
            self._release(granted)

    async def _acquire(self, pixels: int) -> int:
        if not self._waiters and self.in_use + pixels <= self.capacity:
            self.in_use += pixels
            return pixels
        entry = (pixels, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():
                self._release(pixels)  # granted just as the waiter was cancelled
            else:
                self._waiters.remove(entry)
                self._grant()  # it may have been holding up the queue
            raise
        return pixels

    def _release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.in_use + self._waiters[0][0] <= self.capacity:
            pixels, future = self._waiters.popleft()
            self.in_use += pixels
            future.set_result(None)


@cache
def decode_budget(capacity: int) -> DecodeBudget:
    """The process's budget (one per configured size: tests run apps with several)."""
    return DecodeBudget(capacity)


@asynccontextmanager
async def decoded(
    data: bytes, max_pixels: int, budget: DecodeBudget
) -> AsyncIterator[PreparedImage]:
    """Validate and decode ``data`` within the budget; the pixels stay reserved until the
    block ends, so drop every reference to the image by then."""
    width, height = check_header(data, max_pixels)
    async with budget.reserve(width * height):
        yield await asyncio.to_thread(prepare_image, data, max_pixels)
