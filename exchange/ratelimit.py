"""Token-bucket rate limits, pure: the caller passes the clock reading in.

Each key (an API key, a user id or a client IP) owns a bucket of ``burst`` tokens refilled at
``rate_per_s``. A request takes one token; an empty bucket answers with the seconds until the
next token, which becomes the ``Retry-After`` header of a 429.

Buckets live in the process, so a check costs no round trip; :mod:`exchange.ratelimit_share`
makes them shared by every API and ws process (each debits what the others spent, published
through Redis every 100 ms).
Idle buckets are dropped once full again, so memory stays bounded by the active clients.
"""

from __future__ import annotations

import math

import attrs

# Sweep idle buckets every this many calls (amortised; no timer task needed).
_SWEEP_EVERY = 4096


@attrs.define
class _Bucket:
    tokens: float
    updated: float


@attrs.define
class TokenBucketLimiter:
    """``take(key, now)`` → 0.0 when allowed, else the seconds to wait. ``rate_per_s <= 0``
    disables the limit."""

    rate_per_s: float
    burst: float
    _buckets: dict[str, _Bucket] = attrs.field(factory=dict, init=False)
    _calls: int = attrs.field(default=0, init=False)

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        if self.rate_per_s <= 0:
            return 0.0
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep(now)
        bucket = self._refilled(key, now)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate_per_s

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated = now
        return bucket

    def debit(self, key: str, now: float, cost: float) -> None:
        """Take ``cost`` tokens that were spent elsewhere, refusing nothing: the bucket may go
        below zero, and this process then waits for it to refill like everyone else."""
        if self.rate_per_s <= 0:
            return
        bucket = self._refilled(key, now)
        bucket.tokens -= cost

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate_per_s
        idle = [key for key, b in self._buckets.items() if now - b.updated >= full_after]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` is whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_s)))
