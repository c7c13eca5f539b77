"""Retrying with back-off: the one policy of every program that waits for Redis or PostgreSQL.

Delays start at :data:`FIRST_DELAY_S`, double, and stop growing at :data:`MAX_DELAY_S`, so a
server that comes back is noticed within two seconds while one that stays away costs a call
every two. No jitter: one engine, a few API, ws and db processes do not stampede a server, and
exact delays keep the MockClock tests exact (trio's own ``_timeouts`` make the same choice of
determinism over spread). There is no attempt limit either: every caller here waits for as long
as it takes (the engine must not drop a batch, the writer must not drop events), and a caller
that wants a bound wraps the call in ``trio.move_on_after``.

:func:`retry` runs on trio's clock; :func:`retry_blocking` in a thread (a worker's SQL, the
pub/sub thread), sleeping with a function it is given so a closing thread can cut it short.
Callers say what is worth retrying (``retry_on``) and how a failure is logged (``on_failure``,
called before each sleep with the error, the delay and how many failures in a row so far).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import trio

from exchange.errors import ServiceUnavailable

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0

T = TypeVar("T")
Errors = type[BaseException] | tuple[type[BaseException], ...]
OnFailure = Callable[[BaseException, float, int], object]


def backoff_delays(
    first_s: float = FIRST_DELAY_S, max_s: float = MAX_DELAY_S, factor: float = 2.0
) -> Iterator[float]:
    """Delays between attempts: ``first_s``, multiplied by ``factor``, capped at ``max_s``."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * factor, max_s)


class _Failures:
    """Failures in a row: the delay before the next attempt, and the caller's log line."""

    def __init__(self, delays: Callable[[], Iterator[float]], on_failure: OnFailure | None):
        self.count = 0
        self._delays = delays
        self._pending: Iterator[float] | None = None
        self._on_failure = on_failure

    def delay_after(self, exc: BaseException) -> float:
        self._pending = self._pending or self._delays()
        delay = next(self._pending)
        self.count += 1
        if self._on_failure is not None:
            self._on_failure(exc, delay, self.count)
        return delay


async def retry(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    retry_on: Errors = ServiceUnavailable,
    on_failure: OnFailure | None = None,
    on_recovery: Callable[[], object] | None = None,
    delays: Callable[[], Iterator[float]] = backoff_delays,
) -> T:
    """``await fn(*args)`` until it does not raise ``retry_on``, sleeping ``delays()`` between.

    ``on_recovery`` is called once it succeeds after failing. Other errors propagate at once.
    """
    failures = _Failures(delays, on_failure)
    while True:
        try:
            result = await fn(*args)
        except retry_on as exc:
            await trio.sleep(failures.delay_after(exc))
            continue
        if failures.count and on_recovery is not None:
            on_recovery()
        return result


def retry_blocking(
    fn: Callable[..., T],
    *args: Any,
    retry_on: Errors,
    on_failure: OnFailure | None = None,
    sleep: Callable[[float], object] = time.sleep,
    delays: Callable[[], Iterator[float]] = backoff_delays,
) -> T:
    """:func:`retry` for a thread: ``fn(*args)`` until it does not raise ``retry_on``."""
    failures = _Failures(delays, on_failure)
    while True:
        try:
            return fn(*args)
        except retry_on as exc:
            sleep(failures.delay_after(exc))
