"""Prometheus metrics: request counts and latency per route; the history replica's lag.

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
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from exchange.history.replica_lag import ReplicaState

REQUESTS = Counter(
    "exchange_api_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "exchange_api_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Each API process measures the same replica; the exposition keeps the largest of the live ones.
REPLICA_LAG = Gauge(
    "exchange_history_replica_lag_seconds",
    "How far the history read replica is behind the primary (-1: not measurable)",
    multiprocess_mode="livemax",
)
REPLICA_SERVING = Gauge(
    "exchange_history_replica_serving",
    "1 while history reads go to the replica, 0 while they fall back to the primary",
    multiprocess_mode="livemin",
)


def observe_replica(state: ReplicaState) -> None:
    REPLICA_LAG.set(-1 if state.lag_s is None else state.lag_s)
    REPLICA_SERVING.set(1 if state.serves_reads else 0)


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
