"""Prometheus metrics, per app, correct under several workers (multiprocess mode).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``bastion serve --workers N`` sets it),
every worker writes its samples there and ``/metrics`` aggregates them all.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import Message, Receive, Scope, Send

from bastion.asgi import HttpMiddleware, on_response_start

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode samples go to files; a collector reads them all at scrape time.
        self.registry = CollectorRegistry()
        target = None if multiprocess else self.registry
        if multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "bastion_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=target,
        )
        self.latency = Histogram(
            "bastion_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.logins = Counter(
            "bastion_logins_total", "Password checks by outcome", ["outcome"], registry=target
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.refresh_reuse = Counter(
            "bastion_refresh_reuse_detected_total",
            "Spent refresh tokens presented again (sessions revoked)",
            registry=target,
        )

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request; labelled children are looked up once per label set."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe(self, event: str) -> None:
        """Count a login outcome or a refresh-token reuse (told by the token grants)."""
        if event == "refresh_reuse_detected":
            self.refresh_reuse.inc()
        else:
            self.logins.labels(event.removeprefix("login_")).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware(HttpMiddleware):
    """Counts every request by its route template (never the raw path: no ids in labels)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        def note(message: Message) -> None:
            nonlocal status
            status = message["status"]

        try:
            await self.app(scope, receive, on_response_start(send, note))
        finally:
            metrics: Metrics = scope["app"].state.runtime.metrics
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.record(template, scope["method"], status, time.perf_counter() - started)
