"""``GET /metrics``: request counts and latencies, inference methods, cache hits, provider
failures and circuit states in Prometheus text format."""

from __future__ import annotations

import hashlib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from xintu.categories import Category


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.usefixtures("with_local")
async def test_metrics_count_routes_methods_hits_failures_and_circuits(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.pets, seed=21)
    image_hash = hashlib.sha256(image).hexdigest()
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (_, client):
        files = {"image": ("a.jpg", image, "image/jpeg")}
        assert (await client.post("/api/v1/classify", files=files)).status_code == 200
        hit = await client.post("/api/v1/classify/check-cache", json={"image_hash": image_hash})
        assert hit.json()["cached"] is True
        fake_llm.mode = "error500"
        other = make_image(Category.foods, seed=22)
        local = await client.post(
            "/api/v1/classify", files={"image": ("b.jpg", other, "image/jpeg")}
        )
        assert local.json()["data"]["inference_method"] == "local"
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return values.get((name, frozenset(labels.items())), 0.0)

    assert (
        value("xintu_http_requests_total", method="POST", route="/api/v1/classify", status="200")
        == 2
    )
    assert (
        value("xintu_http_request_duration_seconds_count", method="POST", route="/api/v1/classify")
        == 2
    )
    for method in ("remote", "local"):
        assert (
            value(
                "xintu_classifications_total",
                endpoint="classify",
                inference_method=method,
                outcome="ok",
            )
            == 1
        )
    assert value("xintu_classification_duration_seconds_count", inference_method="cache") == 1
    assert value("xintu_cache_hits_total", endpoint="check-cache") == 1
    assert value("xintu_provider_failures_total", provider="openai") == 1
    assert value("xintu_provider_circuit_state", provider="openai", state="closed") == 1
    assert value("xintu_provider_circuit_state", provider="openai", state="open") == 0
