"""Prometheus metrics: HTTP requests by route and status, and the counters products register."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("wayline_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("wayline_http_request_seconds", "HTTP request latency", ["route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))


class MetricsMiddleware:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware on the ingestion hot path)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def _send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(scope["method"], name, str(status[0])).inc()
            HTTP_LATENCY.labels(name).observe(time.perf_counter() - start)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
