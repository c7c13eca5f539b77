"""What every REST handler is given: the process's configuration, backend and rate limits.

Rate-limit charging lives here, once: a surface names the bucket (an API key, a user, an IP) and
the cost; an empty bucket raises :class:`~exchange.surfaces.failures.RateLimited`, which each
surface's error ladder answers 429.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import attrs

from exchange.credentials import CredentialStore
from exchange.markets import MarketConfig
from exchange.settings import Settings
from exchange.surfaces.backend import Backend
from exchange.surfaces.failures import RateLimited
from exchange.surfaces.signing_window import wall_clock_ms


class Limiter(Protocol):
    """A token bucket per key (``exchange.ratelimit.TokenBucketLimiter``)."""

    def take(self, key: str, now: float, cost: float = 1.0) -> float: ...


@attrs.define
class Api:
    """State shared by every request of one API process."""

    settings: Settings
    config: MarketConfig
    backend: Backend
    credentials: CredentialStore
    private_limiter: Limiter
    public_limiter: Limiter
    clock: Callable[[], float] = time.monotonic  # the rate limits' clock
    clock_ms: Callable[[], int] = wall_clock_ms  # the signatures' clock (epoch ms)

    @property
    def dev_auth(self) -> bool:
        """``EXCHANGE_AUTH=dev``: requests name their user; nothing is signed."""
        return self.settings.auth_mode == "dev"

    def charge(self, limiter: Limiter, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens from ``key``'s bucket. Raises RateLimited when it is empty."""
        wait_s = limiter.take(key, self.clock(), cost)
        if wait_s > 0:
            raise RateLimited(wait_s)

    def charge_public(self, remote: str) -> None:
        self.charge(self.public_limiter, f"ip:{remote}")
