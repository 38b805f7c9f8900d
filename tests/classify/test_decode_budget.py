"""Decoded pixels in flight stay within XINTU_DECODE_BUDGET_PIXELS (docs/RELIABILITY.md):
a batch beyond the budget queues instead of decoding everything at once."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.conftest import AppFactory
from tests.fixtures.images import make_image
from tests.fixtures.local_stand_in import StandInLocal
from xintu.categories import Category
from xintu.images.budget import decode_budget
from xintu.inference.base import Prediction, PreparedImage


class CountingLocal(StandInLocal):
    """Records how many decoded images are being classified at once; each waits (up to a
    deadline) for ``expected`` to be in flight together, so the peak does not depend on
    how fast the machine decodes."""

    def __init__(self, expected: int = 1) -> None:
        super().__init__(Category.pets)
        self.expected = expected
        self.in_flight = 0
        self.peak = 0
        self._together = asyncio.Event()

    async def classify(self, image: PreparedImage) -> Prediction:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.expected:
            self._together.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._together.wait(), timeout=5)
            return await super().classify(image)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize(("budget", "expected_peak"), [(45_000, 2), (10_000, 1)])
async def test_batch_decodes_within_the_pixel_budget(
    make_client: AppFactory, sqlite_url: str, budget: int, expected_peak: int
) -> None:
    local = CountingLocal(expected_peak)
    images = [make_image(Category.pets, seed=seed, size=(200, 100)) for seed in range(8)]
    async with make_client(
        database_url=sqlite_url,
        local=local,
        inference_mode="local_only",
        decode_budget_pixels=budget,
    ) as (_, client):
        response = await client.post(
            "/api/v1/classify/batch",
            files=[("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)],
        )
    assert response.status_code == 200, response.text
    assert response.json()["success_count"] == 8
    # 20,000 pixels each: as many at once as the budget holds, one when it holds none whole.
    assert local.peak == expected_peak
    assert decode_budget(budget).in_use == 0


async def test_an_image_over_the_pixel_limit_reserves_nothing(
    make_client: AppFactory, sqlite_url: str
) -> None:
    huge = make_image(Category.pets, seed=1, size=(400, 300), image_format="PNG")
    async with make_client(
        database_url=sqlite_url,
        local=CountingLocal(),
        inference_mode="local_only",
        max_image_pixels=100_000,
        decode_budget_pixels=50_000,
    ) as (_, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("big.png", huge, "image/png")}
        )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_image"
    assert decode_budget(50_000).in_use == 0
