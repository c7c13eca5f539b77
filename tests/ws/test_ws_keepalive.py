"""The heartbeat timers under MockClock: exact virtual times, no real waiting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from exchange.ws.keepalive import PING_INTERVAL_S, PONG_TIMEOUT_S, keep_alive


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_answered_pings_keep_going(autojump_clock: trio.testing.MockClock) -> None:
    pings: list[float] = []

    async def ping() -> None:
        pings.append(trio.current_time())
        await trio.sleep(0.5)  # the pong takes half a second

    with trio.move_on_after(100):
        await keep_alive(ping)
    assert pings == [20.0, 40.5, 61.0, 81.5]


async def test_silent_peer_is_given_up_after_interval_plus_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answered = 0

    async def ping() -> None:
        nonlocal answered
        if answered < 2:
            answered += 1
            return
        await trio.sleep_forever()  # the peer stopped answering

    await keep_alive(ping)
    assert trio.current_time() == 3 * PING_INTERVAL_S + PONG_TIMEOUT_S


async def test_connection_errors_propagate(autojump_clock: trio.testing.MockClock) -> None:
    async def ping() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await keep_alive(ping, interval_s=1, timeout_s=1)
    assert trio.current_time() == 1
