"""A stalled PostgreSQL: history answers 503 at once, trading goes on, the writer catches up.

SIGSTOP freezes a server the way a frozen host or a cut network does: its kernel still accepts
TCP connections and acknowledges what is sent, but nothing ever answers. The real programs
(``bin/engine``, ``bin/db``, ``bin/api`` under hypercorn) run as child processes on a PostgreSQL
of this test's own (the session's server is shared, so it must not be stopped).

The requirement is "answers within 3 s rather than hanging": each PostgreSQL read is timed with
``time.monotonic`` and must answer 503 in under :data:`ANSWER_BOUND_S`; the settings under test
allow about 2 s (see ``DB_QUERY_TIMEOUT_S``), so the bound keeps a margin for a busy machine.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exchange.db.migrate import migrate
from exchange.dev.localservers import PostgresServer, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "stall-test-admin-token"
ANSWER_BOUND_S = 3.0  # the bound for a 503 from a stalled PostgreSQL
HANG_S = 10.0  # a request that takes this long counts as hanging
READY_S = 60.0
MARKET = "TATA_INR"
# Every endpoint of the native API and the Backpack surface that reads PostgreSQL.
HISTORY_PATHS = [
    f"/api/v1/trades?symbol={MARKET}",
    f"/api/v1/klines?market={MARKET}&interval=1m",
    "/api/v1/tickers",
    f"/api/v1/ticker?symbol={MARKET}",
    f"/api/v1/orders/history?market={MARKET}&user_id=maker",
    f"/api/v1/fills?market={MARKET}&user_id=maker",
    "/api/v1/order?client_order_id=never-placed&user_id=maker",  # not in the engine: history
    f"/backpack/api/v1/trades?symbol={MARKET}",
    "/backpack/api/v1/tickers",
]


class Answer:
    """One HTTP exchange: status (None when there was no answer in time), body, seconds taken."""

    def __init__(self, status: int | None, body: Any, elapsed_s: float) -> None:
        self.status, self.body, self.elapsed_s = status, body, elapsed_s

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body!r}, {self.elapsed_s:.2f}s)"


class Rest:
    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=HANG_S) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (TimeoutError, urllib.error.URLError):
            return Answer(None, None, time.monotonic() - started)
        return Answer(status, json.loads(raw or b"null"), time.monotonic() - started)

    def ok(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        answer = self.call(method, path, body, **headers)
        assert answer.status == 200, (method, path, answer)
        return answer.body

    def deposit(self, user_id: str, asset: str, amount: str) -> None:
        body = {"user_id": user_id, "asset": asset, "amount": amount}
        self.ok("POST", "/api/v1/admin/deposit", body, X_ADMIN_TOKEN=ADMIN_TOKEN)

    def trade(self, price: str, quantity: str = "1") -> dict:
        """A resting sell of ``maker`` taken by ``taker``; returns the taker's order."""
        order = {"market": MARKET, "price": price, "quantity": quantity}
        self.ok("POST", "/api/v1/order", {"user_id": "maker", "side": "sell", **order})
        return self.ok("POST", "/api/v1/order", {"user_id": "taker", "side": "buy", **order})


def eventually(probe: Callable[[], Any], what: str, timeout_s: float = READY_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may freeze; thawed before it is stopped."""
    with PostgresServer.start(tmp_path / "postgres", fsync=False) as server:
        try:
            yield server
        finally:
            thaw(server)


def _server_processes(server: PostgresServer) -> list[int]:
    """The postmaster and its children (each backend leads a process group of its own, so
    signalling the postmaster's group is not enough)."""
    pid = server.pid
    assert pid is not None
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def freeze(server: PostgresServer) -> None:
    """SIGSTOP the whole server: the postmaster first (so it starts no one), then every child."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    for pid in _server_processes(server):
        os.kill(pid, signal.SIGSTOP)


def thaw(server: PostgresServer) -> None:
    if server.pid is None:
        return
    for pid in _server_processes(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def programs(env: dict[str, str], logs: Path, *names: str) -> Iterator[None]:
    """``bin/<name>`` for each name as children with logs in ``logs``; SIGTERM on exit."""
    running: list[subprocess.Popen] = []
    try:
        for name in names:
            with open(logs / f"{name}.log", "ab") as log:
                running.append(
                    subprocess.Popen(
                        [sys.executable, str(ROOT / "bin" / name)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for process in reversed(running):
            process.send_signal(signal.SIGTERM)
        for process in reversed(running):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def logs_of(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(logs.glob("*.log")))


def stack_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    return os.environ | {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "API_PORT": str(free_port()),
        "EXCHANGE_AUTH": "dev",
        "EXCHANGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def stored_trades(rest: Rest) -> set[tuple[int, str, str]] | None:
    answer = rest.call("GET", f"/api/v1/trades?symbol={MARKET}&limit=1000")
    if answer.status != 200:
        return None
    return {(t["id"], t["price"], t["quantity"]) for t in answer.body}


def fills_of(orders: list[dict]) -> set[tuple[int, str, str]]:
    return {(f["trade_id"], f["price"], f["quantity"]) for o in orders for f in o["fills"]}


def test_stalled_postgres_answers_503_fast_and_history_catches_up(
    redis_url: str, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    env = stack_env(redis_url, own_postgres.create_database("exchange"))
    rest = Rest(int(env["API_PORT"]))
    logs = tmp_path / "logs"
    logs.mkdir()
    with programs(env, logs, "engine", "db", "api"):
        try:
            eventually(lambda: rest.call("GET", "/readyz").status == 200, "the stack")
        except AssertionError:
            raise AssertionError(logs_of(logs)) from None
        for user in ("maker", "taker"):
            rest.deposit(user, "INR", "1000000")
            rest.deposit(user, "TATA", "1000")
        takers = [rest.trade("100")]
        eventually(lambda: stored_trades(rest) == fills_of(takers), "the first trade stored")

        freeze(own_postgres)
        try:
            # Several at once first, while the pool still holds connections that look alive:
            # none may wait behind another.
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                burst = list(pool.map(lambda path: rest.call("GET", path), HISTORY_PATHS[:1] * 8))
            answers = {"burst": burst}
            for price in ("101", "102"):
                takers.append(rest.trade(price))  # the engine never waits on PostgreSQL
            for path in HISTORY_PATHS:
                answers[path] = [rest.call("GET", path)]
                takers.append(rest.trade("103"))
            ready = rest.call("GET", "/readyz")
        finally:
            thaw(own_postgres)

        for path, got in answers.items():
            for answer in got:
                assert answer.status == 503, (path, answer)
                assert answer.elapsed_s < ANSWER_BOUND_S, (path, answer)
                code = answer.body.get("error", answer.body)["code"]
                assert code in ("SERVICE_UNAVAILABLE", "TRADING_PAUSED"), (path, answer)
        assert ready.status == 503, ready
        assert ready.elapsed_s < ANSWER_BOUND_S, ready
        assert ready.body["checks"]["postgres"] != "ok", ready
        assert ready.body["checks"]["engine"] == "ok", ready
        assert all(taker["status"] == "filled" for taker in takers), takers

        # After SIGCONT everything comes back by itself, and history is what the engine did.
        made = fills_of(takers)
        assert len(made) == len(takers)
        eventually(lambda: stored_trades(rest) == made, "history to catch up")
        eventually(lambda: rest.call("GET", "/readyz").status == 200, "ready again")
        fills = rest.ok("GET", f"/api/v1/fills?market={MARKET}&user_id=taker&limit=1000")
        assert {(f["trade_id"], f["price"], f["quantity"]) for f in fills} == made


def _writer_backend(database_url: str) -> int | None:
    """The pid of the db writer's backend (its connection's application name) while it is idle
    between batches."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE state = 'idle' AND application_name = 'exchange-db-writer'"
        ).fetchone()
    return row[0] if row else None


def test_writer_leaves_a_connection_that_stopped_answering(
    redis_url: str, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    """Only the writer's own backend stops (as when its TCP peer is gone for good): the writer
    gives up on that connection after ``DB_WRITE_TIMEOUT_S`` and writes on a new one."""
    database_url = own_postgres.create_database("exchange")
    env = stack_env(redis_url, database_url, DB_WRITE_TIMEOUT_S="2")
    rest = Rest(int(env["API_PORT"]))
    logs = tmp_path / "logs"
    logs.mkdir()
    with programs(env, logs, "engine", "db", "api"):
        try:
            eventually(lambda: rest.call("GET", "/readyz").status == 200, "the stack")
        except AssertionError:
            raise AssertionError(logs_of(logs)) from None
        for user in ("maker", "taker"):
            rest.deposit(user, "INR", "1000000")
            rest.deposit(user, "TATA", "1000")
        takers = [rest.trade("100")]
        eventually(lambda: stored_trades(rest) == fills_of(takers), "the first trade stored")
        backend = eventually(lambda: _writer_backend(database_url), "the writer's backend")
        os.kill(backend, signal.SIGSTOP)
        try:
            takers += [rest.trade("101"), rest.trade("102")]
            made = fills_of(takers)
            eventually(lambda: stored_trades(rest) == made, "the writer to write on", 30)
        finally:
            os.kill(backend, signal.SIGCONT)


def test_migrating_a_frozen_server_fails_instead_of_hanging(own_postgres: PostgresServer) -> None:
    """bin/db migrates before it writes: against a frozen server that must fail (and be retried
    by the program's restart) rather than hang its start forever."""
    database_url = own_postgres.create_database("frozen")
    freeze(own_postgres)
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        migrate(database_url)
    assert time.monotonic() - started < HANG_S
