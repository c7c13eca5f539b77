"""Stop orders in history: migration 0005 on stored (and compressed) orders, the writer's rows
carrying the trigger fields, and the history reads returning them."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import orjson
import psycopg

from exchange import codec
from exchange.db import copy_batch
from exchange.db.migrate import migrate
from exchange.db.rows import decode_entry, merge
from exchange.engine.core import Engine
from exchange.history.queries import HistoryQueries
from exchange.markets import MarketConfig
from exchange.models import Deposit, OrderType, PlaceOrder, Side
from exchange.money import to_steps

MARKET_TICK = Decimal("0.01")  # TATA_INR's


def ticks(price: str) -> int:
    return to_steps(Decimal(price), MARKET_TICK)


REPO = Path(__file__).resolve().parents[2]
NOV_2023 = 1_700_000_000_000  # ms; a week-old chunk is compressible


def _before_0005(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(REPO / "sql" / "migrations", directory)
    for path in directory.glob("*.sql"):
        if path.name >= "0005":
            path.unlink()
    return directory


def _old_order(conn: psycopg.Connection, order_id: int, user: str) -> None:
    """An order as the writer stored it before stop orders existed (no trigger columns)."""
    conn.execute(
        "INSERT INTO orders (order_id, created_at, user_id, client_order_id, market, side, type,"
        " price, quantity, quote_quantity, executed_quantity, executed_quote_quantity, status,"
        " time_in_force, post_only, self_trade_prevention, updated_at, closed_at, seq)"
        " VALUES (%s, TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond', %s, NULL, 'TATA_INR',"
        " 'buy', 'limit', 100, 1, NULL, 1, 100, 'filled', 'GTC', false, 'cancel_taker',"
        " TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond',"
        " TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond', %s)",
        [order_id, NOV_2023, user, NOV_2023, NOV_2023, order_id],
    )


def _stop_events(config: MarketConfig) -> list[bytes]:
    """Entries of a real engine: a trade at 100, a stop-loss sell at 99 placed, a trade at 99
    triggering it (it sells into a bid at 98), and a take-profit left waiting. Stamped in
    November 2023, in the chunk of the old orders."""
    engine = Engine(config)
    seq = 0
    entries: list[bytes] = []

    def apply(command) -> None:
        nonlocal seq
        seq += 1
        outcome = engine.apply(command, seq=seq, ts=NOV_2023 + seq)
        entries.append(orjson.dumps([codec.event_message(e, seq) for e in outcome.events]))

    def limit(user: str, side: Side, price: str, **kw) -> PlaceOrder:
        return PlaceOrder(user, "TATA_INR", side, OrderType.LIMIT, ticks(price), 100, **kw)

    for user in ("1", "2", "3"):
        apply(Deposit(user, "INR", 10**9))
        apply(Deposit(user, "TATA", 10**9))
    apply(limit("1", Side.BUY, "100"))
    apply(limit("2", Side.SELL, "100"))  # last price 100
    apply(
        PlaceOrder(
            "3",
            "TATA_INR",
            Side.SELL,
            OrderType.MARKET,
            quantity=100,
            trigger_price=ticks("99"),
        )
    )  # order 3: stop-loss
    apply(limit("3", Side.SELL, "105", trigger_price=ticks("104")))  # order 4
    apply(limit("1", Side.BUY, "98"))  # order 5
    apply(limit("1", Side.BUY, "99"))  # order 6
    apply(limit("2", Side.SELL, "99"))  # order 7 trades at 99: order 3 sells into order 5
    return entries


def _write(conn: psycopg.Connection, config: MarketConfig, entries: list[bytes]) -> None:
    rows = merge(decode_entry({b"events": entry}, config) for entry in entries)
    copy_batch.prepare_connection(conn)
    copy_batch.write_rows(conn, rows)


async def test_stop_orders_in_history_after_migrating_stored_orders(
    database_url: str, config: MarketConfig, tmp_path: Path, postgres_server
) -> None:
    migrate(database_url, _before_0005(tmp_path))
    with psycopg.connect(database_url, autocommit=True) as conn:
        _old_order(conn, 1_000_001, "3")
        timescaledb = postgres_server.timescaledb
        if timescaledb:  # the old orders sit in a compressed chunk when 0005 runs
            conn.execute("SELECT compress_chunk(c) FROM show_chunks('orders') c")
            assert conn.execute(
                "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'orders'"
            ).fetchone()[0]
    assert migrate(database_url)[0] == "0005_stop_orders.sql"  # and any later ones

    with psycopg.connect(database_url, autocommit=True) as conn:
        _write(conn, config, _stop_events(config))
        if timescaledb:
            conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('orders') c"
            )
            # a redelivery into the compressed chunk changes nothing
            _write(conn, config, _stop_events(config))

    async with HistoryQueries(database_url) as history:
        closed = await history.order_history("3", "TATA_INR", 100)
        pending = await history.order("3", order_id=4)
        old = await history.order("3", order_id=1_000_001)
    by_id = {order["order_id"]: order for order in closed}
    assert set(by_id) == {"3", "1000001"}
    stop = by_id["3"]
    assert stop["status"] == "filled" and stop["type"] == "market"
    assert stop["trigger_price"] == "99"
    assert stop["triggered_at"] == NOV_2023 + 13  # the command whose trade triggered it
    assert stop["executed_quantity"] == "1" and stop["executed_quote_quantity"] == "98"
    assert pending["status"] == "trigger_pending" and pending["trigger_price"] == "104"
    assert pending["triggered_at"] is None and pending["fills"] == []
    assert old["trigger_price"] is None and old["triggered_at"] is None
    assert by_id["1000001"] == {k: v for k, v in old.items() if k != "fills"}


def test_rows_of_events_without_trigger_fields(config: MarketConfig) -> None:
    """An entry written by an engine older than stop orders still decodes (trigger: none)."""
    entries = _stop_events(config)
    events = orjson.loads(entries[-1])
    for event in events:
        if event["record"] == "OrderUpdated":
            del event["order"]["trigger_price"], event["order"]["triggered_at"]
    rows = decode_entry({b"events": orjson.dumps(events)}, config)
    assert rows.orders and all(row[-2:] == (None, None) for row in rows.orders)
