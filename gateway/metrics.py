"""Prometheus metrics: HTTP requests by route and status, GraphQL operations, durations,
and the database connection pool (size, checked out, overflow, waiting, timeouts).

`MetricsMiddleware` is a plain ASGI middleware (no framework imports); `render()`
gives the text exposition format for `GET /metrics`. Labels are bounded: the route
is the matched route's path template (never the raw path), GraphQL operations are
labelled by type and outcome, root fields only once the document was validated
against the schema.

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's
multiprocess mode) and `/metrics` aggregates every worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.db import pool_stats

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    registry=REGISTRY,
)
GRAPHQL_OPERATIONS = Counter(
    "gateway_graphql_operations_total",
    "GraphQL operations, by type (query, mutation, unknown) and outcome (ok, error, refused).",
    ["operation_type", "outcome"],
    registry=REGISTRY,
)
GRAPHQL_DURATION = Histogram(
    "gateway_graphql_operation_duration_seconds",
    "Time to run a GraphQL operation (parse, validate, execute), by type.",
    ["operation_type"],
    registry=REGISTRY,
)
GRAPHQL_ROOT_FIELDS = Counter(
    "gateway_graphql_root_fields_total",
    "Root fields of validated GraphQL operations, by operation type and field.",
    ["operation_type", "field"],
    registry=REGISTRY,
)
LIMITED = Counter(
    "gateway_limited_requests_total",
    "Requests refused by a limit before execution (rate, concurrency, body, batch).",
    ["limit"],
    registry=REGISTRY,
)
AUDIT_EVENTS = Counter(
    "gateway_audit_events_total",
    "Audit events written, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


class PoolCollector:
    """The database connection pool of this process, read when scraped (gateway/db.py)."""

    def collect(self):
        stats = pool_stats()
        yield GaugeMetricFamily(
            "gateway_db_pool_size", "Database connections the pool keeps open.", value=stats["size"]
        )
        yield GaugeMetricFamily(
            "gateway_db_pool_checked_out",
            "Database connections in use by requests and jobs now.",
            value=stats["checked_out"],
        )
        yield GaugeMetricFamily(
            "gateway_db_pool_overflow", "Database connections open beyond the pool size now.", value=stats["overflow"]
        )
        yield GaugeMetricFamily(
            "gateway_db_pool_waiting",
            "Requests and jobs waiting for a database connection now.",
            value=stats["waiting"],
        )
        yield CounterMetricFamily(
            "gateway_db_pool_timeouts",
            "Waits for a database connection that ran out (answered 503 / UNAVAILABLE).",
            value=stats["timeouts"],
        )


REGISTRY.register(PoolCollector())


def render() -> tuple[bytes, str]:
    """(body, content type) of the exposition for `GET /metrics`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(PoolCollector())  # this worker's pool (the scraped one's)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


class MetricsMiddleware:
    """Counts and times every HTTP request by its matched route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
