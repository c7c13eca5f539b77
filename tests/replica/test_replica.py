"""History from a streaming replica: equal to the primary's, the fallback while it lags, recovery.

The exchange runs against both servers (the db writer and migrations on the primary, the API's
history reads on the replica). Pausing the replica's WAL replay (``pg_wal_replay_pause()``) makes
it fall behind while it still answers, which is exactly what the lag bound is for.
"""

from __future__ import annotations

import attrs
import orjson
import trio

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.db.migrate import migrate
from exchange.history.queries import open_history_reader
from exchange.settings import Settings
from tests.api.conftest import ADMIN_TOKEN, Client, eventually
from tests.replica.conftest import Pair

MAX_LAG_S = 1.5
HISTORY_PATHS = (
    "/api/v1/trades?symbol=TATA_INR",
    "/api/v1/klines?market=TATA_INR&interval=1m",
    "/api/v1/ticker?symbol=TATA_INR",
    "/api/v1/tickers",
    "/api/v1/orders/history?user_id=1",
    "/api/v1/fills?user_id=2",
)


async def _trade(api: Client, price: str) -> None:
    for side, user in (("buy", "1"), ("sell", "2")):
        await api.ok(
            "POST",
            "/api/v1/order",
            {"market": "TATA_INR", "price": price, "quantity": "1", "side": side, "user_id": user},
        )


async def _history(api: Client) -> dict[str, object]:
    return {path: await api.ok("GET", path) for path in HISTORY_PATHS}


async def _replica_check(api: Client) -> str:
    status, body, _ = await api.call("GET", "/readyz")
    assert status == 200, body  # a lagging replica never makes the API unready
    return body["checks"]["replica"]


async def _metric(api: Client, name: str) -> float:
    _, text, _ = await api.call("GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_history_from_the_replica_falls_back_and_recovers(
    pg_pair: Pair, engine_service: Settings, nursery: trio.Nursery
) -> None:
    settings = attrs.evolve(
        engine_service,
        database_url=pg_pair.primary_url,
        database_replica_url=pg_pair.replica_url,
        replica_max_lag_s=MAX_LAG_S,
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
    )
    migrate(pg_pair.primary_url)
    await nursery.start(db_writer.run, settings)
    app = create_app(settings)
    async with (
        app.test_app() as test_app,
        open_history_reader(pg_pair.primary_url) as primary,
    ):
        api = Client(test_app.test_client(), settings)
        for user in ("1", "2"):
            await api.deposit(user, "INR", "100000")
            await api.deposit(user, "TATA", "1000")
        for price in ("100", "101", "99.5"):
            await _trade(api, price)
        await eventually(lambda: primary.recent_trades("TATA_INR", 10), timeout_s=10)

        # Caught up: the replica serves, and what it serves is the primary's history.
        await eventually(lambda: _equal_when_ok(api, settings), timeout_s=20)
        assert await _metric(api, "exchange_history_replica_serving") == 1
        trades = await api.ok("GET", HISTORY_PATHS[0])
        assert [t["price"] for t in trades] == ["99.5", "101", "100"]

        # Paused: a new trade is on the primary, but reads still come from the replica until
        # it is MAX_LAG_S behind; then they fall back, and /readyz and /metrics say so.
        pg_pair.replica_sql("SELECT pg_wal_replay_pause()")
        try:
            await _trade(api, "102")
            await eventually(lambda: _newest_price(primary, "102"), timeout_s=10)
            assert (await api.ok("GET", HISTORY_PATHS[0]))[0]["price"] == "99.5"  # the replica
            await eventually(lambda: _check_starts(api, "lagging"), timeout_s=MAX_LAG_S + 10)
            assert (await api.ok("GET", HISTORY_PATHS[0]))[0]["price"] == "102"  # the primary
            assert await _metric(api, "exchange_history_replica_serving") == 0
            assert await _metric(api, "exchange_history_replica_lag_seconds") > MAX_LAG_S
        finally:
            pg_pair.replica_sql("SELECT pg_wal_replay_resume()")

        # Resumed: it catches up and serves again, the same history as the primary.
        await eventually(lambda: _equal_when_ok(api, settings), timeout_s=20)
        assert (await api.ok("GET", HISTORY_PATHS[0]))[0]["price"] == "102"
        assert await _metric(api, "exchange_history_replica_lag_seconds") <= MAX_LAG_S

        # Stopped: reads fall back at once (the failed read is retried on the primary).
        pg_pair.replica.stop()
        try:
            assert (await api.ok("GET", HISTORY_PATHS[0]))[0]["price"] == "102"
            await eventually(lambda: _check_starts(api, "down"), timeout_s=10)
            assert await _history(api) == await _primary_history(settings)
        finally:
            pg_pair.replica.restart()
        await eventually(lambda: _equal_when_ok(api, settings), timeout_s=30)


async def _newest_price(primary, price: str) -> bool:
    trades = await primary.recent_trades("TATA_INR", 1)
    return bool(trades) and trades[0]["price"] == price


async def _check_starts(api: Client, status: str) -> bool:
    return (await _replica_check(api)).startswith(status)


async def _primary_history(settings: Settings) -> dict[str, object]:
    """The same endpoints served by an API without a replica."""
    app = create_app(attrs.evolve(settings, database_replica_url=None))
    async with app.test_app() as test_app:
        return await _history(Client(test_app.test_client(), settings))


async def _equal_when_ok(api: Client, settings: Settings) -> bool:
    if await _replica_check(api) != "ok":
        return False
    served = await _history(api)
    return orjson.dumps(served) == orjson.dumps(await _primary_history(settings))
