"""History queries on engine-made events: recent trades, order history, fills, order lookup."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest
import trio
from db_events import EventLog, make_events

from exchange.db import copy_batch
from exchange.db.rows import decode_entry, merge
from exchange.dev.localservers import free_port
from exchange.errors import ServiceUnavailable
from exchange.history.queries import HistoryQueries
from exchange.markets import MarketConfig
from exchange.marketstats import percent_change_text as percent_change

CLOSED = {"filled", "cancelled", "expired", "rejected"}


@pytest.fixture(scope="module")
def events(config: MarketConfig) -> EventLog:
    return make_events(config, seed=23, commands=3000, batch_commands=25, users=8)


@pytest.fixture
async def queries(
    conn: psycopg.Connection, migrated_url: str, events: EventLog, config: MarketConfig
):
    copy_batch.prepare_connection(conn)
    for start in range(0, len(events.entries), 10):
        rows = merge(
            decode_entry({b"events": e}, config) for e in events.entries[start : start + 10]
        )
        copy_batch.write_rows(conn, rows)
    async with HistoryQueries(migrated_url) as history:
        yield history


def _public_trade(trade: dict) -> dict:
    keys = ("id", "market", "price", "quantity", "quote_quantity", "is_buyer_maker", "timestamp")
    return {key: trade[key] for key in keys}


def _order_object(order: dict) -> dict:
    out = dict(order)
    if not (out["type"] == "market" and out["side"] == "buy"):
        out.pop("quote_quantity")
    return out


def _newest_first(items, key):
    return sorted(items, key=key, reverse=True)


async def test_recent_trades_newest_first(queries: HistoryQueries, events: EventLog) -> None:
    for market in ("TATA_INR", "BTC_USDT", "ETH_USDT"):
        expected = _newest_first(
            (t for t in events.trades.values() if t["market"] == market),
            key=lambda t: (t["timestamp"], t["id"]),
        )
        assert len(expected) > 100
        for limit in (1, 100, 1000):
            got = await queries.recent_trades(market, limit)
            assert got == [_public_trade(t) for t in expected[:limit]]
    assert await queries.recent_trades("NOPE_INR", 10) == []


async def test_order_history_is_closed_orders_by_close_time(
    queries: HistoryQueries, events: EventLog
) -> None:
    users = sorted(set(events.users.values()))
    for user in users[:4]:
        mine = [
            o
            for oid, o in events.orders.items()
            if events.users[oid] == user and o["status"] in CLOSED
        ]
        expected = _newest_first(mine, key=lambda o: (o["updated_at"], int(o["order_id"])))
        assert expected
        got = await queries.order_history(user, None, 1000)
        assert got == [_order_object(o) for o in expected[:1000]]
        in_market = [o for o in expected if o["market"] == "TATA_INR"]
        assert await queries.order_history(user, "TATA_INR", 7) == [
            _order_object(o) for o in in_market[:7]
        ]
    assert await queries.order_history("nobody", None, 10) == []


async def test_fills_are_the_users_own_trades(queries: HistoryQueries, events: EventLog) -> None:
    users = sorted(set(events.users.values()))
    for user in users[:4]:
        expected = []
        for trade in events.trades.values():
            for side, owner, order_id, maker in (
                ("buy", trade["buyer_id"], trade["buy_order_id"], trade["is_buyer_maker"]),
                ("sell", trade["seller_id"], trade["sell_order_id"], not trade["is_buyer_maker"]),
            ):
                if owner == user:
                    expected.append(
                        {
                            "trade_id": trade["id"],
                            "order_id": order_id,
                            "market": trade["market"],
                            "side": side,
                            "price": trade["price"],
                            "quantity": trade["quantity"],
                            "quote_quantity": trade["quote_quantity"],
                            "is_maker": maker,
                            "timestamp": trade["timestamp"],
                        }
                    )
        expected = _newest_first(expected, key=lambda f: (f["timestamp"], f["trade_id"]))
        assert await queries.fills(user, None, 1000) == expected[:1000]
        in_market = [f for f in expected if f["market"] == "BTC_USDT"]
        assert await queries.fills(user, "BTC_USDT", 5) == in_market[:5]


async def test_order_lookup_by_id_and_client_id(queries: HistoryQueries, events: EventLog) -> None:
    fills: dict[str, list] = {}
    for trade in sorted(events.trades.values(), key=lambda t: t["id"]):
        for order_id in (trade["buy_order_id"], trade["sell_order_id"]):
            fills.setdefault(order_id, []).append(
                {"trade_id": trade["id"], "price": trade["price"], "quantity": trade["quantity"]}
            )
    with_client_id = [o for o in events.orders.values() if o["client_order_id"]]
    assert with_client_id
    for order in list(events.orders.values())[::37] + with_client_id[:20]:
        user = events.users[int(order["order_id"])]
        expected = _order_object(order) | {"fills": fills.get(order["order_id"], [])}
        assert await queries.order(user, order_id=int(order["order_id"])) == expected
        if order["client_order_id"]:
            got = await queries.order(user, client_order_id=order["client_order_id"])
            assert got == expected
        assert await queries.order("someone-else", order_id=int(order["order_id"])) is None
    assert await queries.order("user0", order_id=10**12) is None


def test_percent_change_rounds_half_up_exactly() -> None:
    assert percent_change(D("200"), D("201")) == "0.5"
    assert percent_change(D("3"), D("4")) == "33.33"
    assert percent_change(D("3"), D("5")) == "66.67"
    assert percent_change(D("8"), D("8.0004")) == "0.01"  # 0.005 exactly: half up
    assert percent_change(D("8"), D("7.9996")) == "-0.01"  # away from zero
    assert percent_change(D("8"), D("8.0003")) == "0"
    assert percent_change(D("8"), D("7.9997")) == "0"
    assert percent_change(D("100"), D("100")) == "0"


async def test_queries_report_postgres_down() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    history = HistoryQueries(url, timeout_s=0.5)
    await history.open()
    try:
        with trio.fail_after(30), pytest.raises(ServiceUnavailable):
            await history.recent_trades("TATA_INR", 10)
    finally:
        await history.aclose()
