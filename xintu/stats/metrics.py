"""``GET /metrics``: Prometheus counters and histograms of this process.

Each app gets its own registry (tests build many apps in one process). Request counts and
latencies are recorded by a middleware, classification outcomes by an observer on the
request_log writer (so every logged row counts exactly once), and provider failures and
circuit states are read from the classifier when Prometheus scrapes.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xintu.config import Settings
from xintu.errors import NotAuthenticated
from xintu.inference.hybrid import CircuitState, HybridClassifier
from xintu.users.security import decode_access_token

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _ClassifierCollector(Collector):
    """Provider failures and circuit states, read from the live classifier at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        classifier: HybridClassifier | None = getattr(self._app.state, "classifier", None)
        failures = CounterMetricFamily(
            "xintu_provider_failures",
            "Remote provider calls that failed (timeout, 429, 5xx, bad answer)",
            labels=["provider"],
        )
        state = GaugeMetricFamily(
            "xintu_provider_circuit_state",
            "1 for the current circuit breaker state of each provider",
            labels=["provider", "state"],
        )
        if classifier is not None:
            for slot in classifier.remote:
                name = slot.classifier.name
                failures.add_metric([name], classifier.provider_failures.get(name, 0))
                current = slot.breaker.state
                for candidate in CircuitState:
                    state.add_metric([name, candidate.value], 1.0 if candidate is current else 0.0)
        yield failures
        yield state


class _RequestLogCollector(Collector):
    """The request-log writer's backlog and what it could not write, read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        service = getattr(self._app.state, "classification", None)
        if service is None:
            return
        writer = service.writer
        yield GaugeMetricFamily(
            "xintu_request_log_backlog_rows",
            "request_log rows logged and not yet committed",
            value=writer.backlog,
        )
        yield CounterMetricFamily(
            "xintu_request_log_rows_written",
            "request_log rows committed",
            value=writer.rows_written,
        )
        yield CounterMetricFamily(
            "xintu_request_log_rows_set_aside",
            "request_log rows the database refused (bad data), set aside so the rest is written",
            value=writer.rows_set_aside,
        )
        yield CounterMetricFamily(
            "xintu_request_log_rows_dropped",
            "request_log rows dropped while the database was unreachable and the buffer full",
            value=writer.rows_dropped,
        )
        yield CounterMetricFamily(
            "xintu_request_log_backpressure_waits",
            "Requests that waited for room in the request_log backlog",
            value=writer.backpressure_waits,
        )


class Metrics:
    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "xintu_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "xintu_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.classifications = Counter(
            "xintu_classifications",
            "Classification requests by endpoint, inference method and outcome",
            ["endpoint", "inference_method", "outcome"],
            registry=self.registry,
        )
        self.classification_latency = Histogram(
            "xintu_classification_duration_seconds",
            "Processing time of one classification by inference method",
            ["inference_method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "xintu_cache_hits",
            "Classifications answered from the cache, by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        self.registry.register(_ClassifierCollector(app))
        self.registry.register(_RequestLogCollector(app))

    def observe_log_row(self, row: dict[str, Any]) -> None:
        """Called for every request_log row the classification service writes."""
        method = row.get("inference_method") or "none"
        endpoint = str(row.get("endpoint") or "unknown")
        outcome = "error" if int(row.get("status_code") or 200) >= 400 else "ok"
        self.classifications.labels(endpoint, method, outcome).inc()
        self.classification_latency.labels(method).observe(
            float(row.get("processing_time_ms") or 0) / 1000
        )
        if row.get("from_cache"):
            self.cache_hits.labels(endpoint).inc()

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label values), not the raw URL; the
    router leaves the matched route in the scope."""
    # FastAPI keeps the full template of a route of a nested router in its own context.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Request counts and latency by route template. Plain ASGI: ``BaseHTTPMiddleware``
    costs more than a whole cache hit."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)


def _require_metrics_access(request: Request) -> None:
    """With ``XINTU_METRICS_TOKEN`` set, only that bearer token or an admin token may read."""
    settings: Settings = request.app.state.settings
    if not settings.metrics_token:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if hmac.compare_digest(token.encode(), settings.metrics_token.encode()):
            return
        claims = decode_access_token(token, settings.jwt_secret or "")
        if claims is not None and claims.kind == "admin":
            return
    raise NotAuthenticated("/metrics needs the metrics token or an admin token")


def install_metrics(app: FastAPI) -> Metrics:
    """Create the registry, the timing middleware and the ``/metrics`` route."""
    metrics = Metrics(app)
    app.state.metrics = metrics

    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format."""
        _require_metrics_access(request)
        return metrics.render()

    return metrics
