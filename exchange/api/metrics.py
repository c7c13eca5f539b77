"""Prometheus metrics: request counts and latency per route.

With several API worker processes, ``bin/api`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start; each worker then writes its samples to files there and ``/metrics`` (answered by
whichever worker) aggregates all of them, so the numbers do not depend on who answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "exchange_api_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "exchange_api_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe(route: str, method: str, status: int, elapsed_s: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(elapsed_s)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    # prometheus_client's own switch (bin/api sets it for its workers), not one of our settings.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
