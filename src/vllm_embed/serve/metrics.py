"""Prometheus metrics of the server: requests, latency, texts per request, tokens, queue, cache hits.

Each app has its own registry (several apps in one process, as in tests, do not collide). Routes are
labelled by path among the known ones, so a client cannot grow the label set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from vllm_embed._optional import require
from vllm_embed.cache import CacheStats
from vllm_embed.serve.limits import Message, Scope

prometheus = require("prometheus_client", "vllm-embed serve's /metrics")
from prometheus_client.core import CounterMetricFamily  # noqa: E402 - after the install hint

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class ServeMetrics:
    """The server's metrics and their registry (`render()` is the `/metrics` body).

    Args:
        routes: The paths reported under their own label; others count as `other`.
        cache_stats: Reads the Embedder's cache hits and misses at scrape time.
    """

    def __init__(self, routes: Collection[str], cache_stats: Callable[[], CacheStats]) -> None:
        self.routes = frozenset(routes)
        self.registry = prometheus.CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = prometheus.Counter(
            "vllm_embed_requests", "HTTP requests answered, by route and status.", ["route", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = prometheus.Histogram(
            "vllm_embed_request_duration_seconds", "Time from request to response, by route.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.inputs = prometheus.Histogram(
            "vllm_embed_request_inputs", "Texts (or documents) per request, by route.", ["route"],
            buckets=_SIZE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tokens = prometheus.Counter(
            "vllm_embed_input_tokens", "Input tokens admitted, by route.", ["route"], registry=registry
        )
        self.in_progress = prometheus.Gauge(
            "vllm_embed_requests_in_progress", "Requests received and not yet answered.", registry=registry
        )
        self.queued_tokens = prometheus.Gauge(
            "vllm_embed_queued_tokens", "Input tokens admitted and not yet answered.", registry=registry
        )
        registry.register(_CacheCollector(cache_stats))

    def route(self, path: str) -> str:
        """The route label of `path`."""
        return path if path in self.routes else "other"

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST


class _CacheCollector:
    """Reports the Embedder's cache counters as they are when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], CacheStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        stats = self._stats()
        for name, value, what in (("hits", stats.hits, "found"), ("misses", stats.misses, "not found")):
            yield CounterMetricFamily(
                f"vllm_embed_cache_{name}", f"Embedding cache lookups {what} in the cache.", value=value
            )


class MetricsMiddleware:
    """ASGI middleware: counts each HTTP request by route and status, and times it."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:  # noqa: D102 - ASGI
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.metrics.route(scope["path"])
        status = 500
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, observed)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
