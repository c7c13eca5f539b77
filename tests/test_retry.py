"""The one retry policy, on trio's MockClock: exact delays, what is retried, what is said."""

from __future__ import annotations

import itertools

import pytest
import trio

from exchange.errors import ServiceUnavailable
from exchange.retry import backoff_delays, retry, retry_blocking


class Flaky:
    """Fails ``failures`` times with ``error``, then returns its argument; notes each call's time."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.left = failures
        self.error = error or ServiceUnavailable("down")
        self.calls: list[float] = []

    async def __call__(self, value: str) -> str:
        self.calls.append(trio.current_time())
        if self.left:
            self.left -= 1
            raise self.error
        return value


def test_delays_double_from_50_ms_and_stop_at_two_seconds():
    delays = backoff_delays()
    assert [next(delays) for _ in range(8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert list(itertools.islice(backoff_delays(1.0, 3.0, factor=3.0), 3)) == [1.0, 3.0, 3.0]


async def test_retry_sleeps_each_delay_on_the_trio_clock(autojump_clock):
    fn = Flaky(4)
    failures: list[tuple[str, float, int]] = []
    recovered: list[float] = []
    start = trio.current_time()
    result = await retry(
        fn,
        "ok",
        on_failure=lambda exc, delay, n: failures.append((str(exc), delay, n)),
        on_recovery=lambda: recovered.append(trio.current_time()),
    )
    assert result == "ok"
    assert [round(t - start, 9) for t in fn.calls] == [0.0, 0.05, 0.15, 0.35, 0.75]
    assert failures == [("down", 0.05, 1), ("down", 0.1, 2), ("down", 0.2, 3), ("down", 0.4, 4)]
    assert [round(t - start, 9) for t in recovered] == [0.75]


async def test_retry_succeeding_at_once_neither_sleeps_nor_recovers(autojump_clock):
    recovered: list[bool] = []
    start = trio.current_time()
    assert await retry(Flaky(0), "ok", on_recovery=lambda: recovered.append(True)) == "ok"
    assert trio.current_time() == start
    assert recovered == []


async def test_other_errors_propagate_at_once(autojump_clock):
    fn = Flaky(1, KeyError("bug"))
    with pytest.raises(KeyError):
        await retry(fn, "ok")
    assert len(fn.calls) == 1


async def test_retry_with_its_own_errors_and_delays(autojump_clock):
    fn = Flaky(3, ValueError("busy"))
    start = trio.current_time()
    await retry(fn, "ok", retry_on=ValueError, delays=lambda: itertools.repeat(0.5))
    assert [t - start for t in fn.calls] == [0.0, 0.5, 1.0, 1.5]


async def test_a_cancelled_retry_stops_during_its_sleep(autojump_clock):
    fn = Flaky(1_000)
    with trio.move_on_after(1.0):
        await retry(fn, "never")
    # 0, 0.05, 0.15, 0.35, 0.75; the next attempt (at 1.55) never comes
    assert len(fn.calls) == 5


def test_retry_blocking_sleeps_with_the_function_it_is_given():
    slept: list[float] = []
    left = [2]

    def fn(value: str) -> str:
        if left[0]:
            left[0] -= 1
            raise ServiceUnavailable("down")
        return value

    assert retry_blocking(fn, "ok", retry_on=ServiceUnavailable, sleep=slept.append) == "ok"
    assert slept == [0.05, 0.1]
