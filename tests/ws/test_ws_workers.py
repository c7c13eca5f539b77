"""``WS_WORKERS``: several ws server processes on one port, supervised as one program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from ws_helpers import connect, numsub, publish_market, wait_numsub

from exchange.dev.localservers import free_port
from exchange.models import Side, TradeExecuted
from exchange.names import market_channel

ROOT = Path(__file__).resolve().parents[2]
MARKET = "TATA_INR"
CLIENTS = 16


@pytest.fixture
def workers(redis_url: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """``bin/ws`` with two workers; yields the supervisor and the port."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WS_PORT": str(port),
        "WS_WORKERS": "2",
        "EXCHANGE_AUTH": "dev",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",  # start unseeded
    }
    supervisor = subprocess.Popen([sys.executable, str(ROOT / "bin" / "ws")], env=env)
    try:
        yield supervisor, port
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for pid in _children(supervisor.pid):
            os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def _listening(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (state 0A in /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1] == f"0100007F:{port:04X}" and row.split()[3] == "0A"
    )


async def _wait_listening(port: int, workers: int = 2) -> None:
    with trio.fail_after(30):
        while _listening(port) < workers:
            await trio.sleep(0.05)


async def test_workers_share_the_port_and_each_serves_clients(workers, redis_url):
    supervisor, port = workers
    await _wait_listening(port)
    # Two whole servers: each holds its own subscription to every market channel.
    await wait_numsub(redis_url, market_channel(MARKET), 2, timeout_s=30)
    pids = _children(supervisor.pid)
    assert len(pids) == 2
    before = {pid: _sockets(pid) for pid in pids}

    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(port)) for _ in range(CLIENTS)]
        for client in clients:
            await client.subscribe(f"trade@{MARKET}")
        accepted = {pid: _sockets(pid) - before[pid] for pid in pids}
        assert sum(accepted.values()) >= CLIENTS and all(accepted.values()), accepted

        trade = TradeExecuted(7, MARKET, 10_000, 100, 10_000, Side.BUY, 1, 2, "a", "b", 0)
        await publish_market(redis_url, MARKET, [trade])
        for client in clients:
            frame = await client.recv_until(lambda f: f.get("stream") == f"trade@{MARKET}")
            assert frame["data"]["id"] == 7 and frame["data"]["price"] == "100"

    supervisor.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(supervisor.wait, 15) == 0
    assert numsub(redis_url, market_channel(MARKET)) == 0


async def test_a_worker_that_dies_stops_the_others(workers, redis_url):
    supervisor, port = workers
    await _wait_listening(port)
    pids = _children(supervisor.pid)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    assert await trio.to_thread.run_sync(supervisor.wait, 15) == 1
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pids[1]}").exists() and time.monotonic() < deadline:
        await trio.sleep(0.05)  # reaped by the supervisor before it exits
    assert not Path(f"/proc/{pids[1]}").exists()


def test_several_workers_need_a_fixed_port(redis_url):
    env = {**os.environ, "REDIS_URL": redis_url, "WS_PORT": "0", "WS_WORKERS": "2"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "ws")], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 2 and b"fixed WS_PORT" in done.stderr


async def test_workers_stop_when_the_supervisor_is_killed(workers, redis_url):
    supervisor, port = workers
    await _wait_listening(port)
    pids = _children(supervisor.pid)
    supervisor.kill()
    supervisor.wait()
    with trio.fail_after(15):
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            await trio.sleep(0.05)
