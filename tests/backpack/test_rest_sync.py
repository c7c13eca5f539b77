"""ccxt's sync ``backpack`` class against the running stack: market data, trading, errors."""

from __future__ import annotations

import ccxt
import pytest

from tests.backpack.conftest import Exchange, eventually, in_thread

SYMBOL = "TATA/INR"


async def test_markets_and_market_data(exchange: Exchange):
    maker = await exchange.user(TATA="100", INR="100000")
    taker = await exchange.user(TATA="100", INR="100000")
    public = exchange.sync()
    markets = await in_thread(public.load_markets)
    market = markets[SYMBOL]
    assert (market["id"], market["spot"], market["active"]) == ("TATA_INR", True, True)
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.01, 0.01)
    assert market["limits"]["amount"]["min"] == 0.01
    assert {"BTC/USDT", "ETH/USDT"} <= set(markets)

    m, t = exchange.sync(maker.keys), exchange.sync(taker.keys)
    await in_thread(m.create_order, SYMBOL, "limit", "sell", 2, 101.5)
    await in_thread(m.create_order, SYMBOL, "limit", "sell", 3, 102)
    await in_thread(m.create_order, SYMBOL, "limit", "buy", 4, 99)
    book = await in_thread(public.fetch_order_book, SYMBOL)
    assert book["asks"] == [[101.5, 2.0], [102.0, 3.0]] and book["bids"] == [[99.0, 4.0]]
    assert isinstance(book["nonce"], int) and book["timestamp"] > 1_600_000_000_000

    await in_thread(t.create_order, SYMBOL, "market", "buy", 1)
    trades = await eventually(lambda: in_thread(public.fetch_trades, SYMBOL))
    assert [(x["price"], x["amount"], x["side"]) for x in trades] == [(101.5, 1.0, "buy")]

    candles = await eventually(lambda: in_thread(public.fetch_ohlcv, SYMBOL, "1m"))
    assert candles[-1][1:] == [101.5, 101.5, 101.5, 101.5, 1.0]

    ticker = await eventually(lambda: _ticker_with_last(public))
    assert (ticker["last"], ticker["open"], ticker["baseVolume"]) == (101.5, 101.5, 1.0)
    tickers = await in_thread(public.fetch_tickers)
    assert tickers[SYMBOL]["last"] == 101.5 and tickers["BTC/USDT"]["last"] is None


async def _ticker_with_last(public: ccxt.backpack):
    ticker = await in_thread(public.fetch_ticker, SYMBOL)
    return ticker if ticker["last"] is not None else None


async def test_trading(exchange: Exchange):
    alice = await exchange.user(TATA="100", INR="10000")
    bob = await exchange.user(TATA="100", INR="10000")
    a, b = exchange.sync(alice.keys), exchange.sync(bob.keys)
    await in_thread(a.load_markets)
    await in_thread(b.load_markets)

    balance = await in_thread(a.fetch_balance)
    assert balance["INR"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}

    # limit with a client id, then look it up open, cancel it, look it up closed
    resting = await in_thread(
        lambda: a.create_order(SYMBOL, "limit", "buy", 5, 90, {"clientOrderId": 4242})
    )
    assert (resting["status"], resting["clientOrderId"], resting["price"]) == ("open", "4242", 90)
    assert (await in_thread(a.fetch_balance))["INR"]["used"] == 450.0
    opened = await in_thread(a.fetch_open_orders, SYMBOL)
    assert [o["id"] for o in opened] == [resting["id"]]
    fetched = await in_thread(a.fetch_order, resting["id"], SYMBOL)
    assert (fetched["id"], fetched["status"], fetched["amount"]) == (resting["id"], "open", 5)
    cancelled = await in_thread(a.cancel_order, resting["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    closed = await in_thread(a.fetch_order, resting["id"], SYMBOL)
    assert closed["status"] == "canceled"

    # post-only that would take is refused; one that rests is accepted
    await in_thread(b.create_order, SYMBOL, "limit", "sell", 10, 100)
    with pytest.raises(ccxt.InvalidOrder):
        await in_thread(lambda: a.create_order(SYMBOL, "limit", "buy", 1, 100, {"postOnly": True}))
    maker = await in_thread(
        lambda: a.create_order(SYMBOL, "limit", "buy", 1, 95, {"postOnly": True})
    )
    assert maker["postOnly"] is True and maker["status"] == "open"

    # IOC takes what it can and expires; FOK that cannot fill whole expires untouched
    ioc = await in_thread(
        lambda: a.create_order(SYMBOL, "limit", "buy", 12, 100, {"timeInForce": "IOC"})
    )
    assert (ioc["filled"], ioc["status"]) == (10, "canceled")
    await in_thread(b.create_order, SYMBOL, "limit", "sell", 3, 100)
    fok = await in_thread(
        lambda: a.create_order(SYMBOL, "limit", "buy", 4, 100, {"timeInForce": "FOK"})
    )
    assert (fok["filled"], fok["status"]) == (0, "canceled")

    # market by amount and by cost
    bought = await in_thread(a.create_order, SYMBOL, "market", "buy", 1)
    assert (bought["filled"], bought["cost"], bought["status"]) == (1, 100, "closed")
    by_cost = await in_thread(
        lambda: a.create_order(SYMBOL, "market", "buy", None, None, {"cost": 150})
    )
    assert (by_cost["filled"], by_cost["cost"]) == (1.5, 150)

    # a filled order is found closed; my trades are the caller's own
    closed_fill = await in_thread(a.fetch_order, bought["id"], SYMBOL)
    assert (closed_fill["status"], closed_fill["filled"]) == ("closed", 1)
    mine = await eventually(lambda: _trades(a, 3))
    assert {t["order"] for t in mine} == {ioc["id"], bought["id"], by_cost["id"]}
    assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" for t in mine)
    theirs = await eventually(lambda: _trades(b, 3))
    assert all(t["side"] == "sell" and t["takerOrMaker"] == "maker" for t in theirs)

    # cancel all
    await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 80)
    all_cancelled = await in_thread(a.cancel_all_orders, SYMBOL)
    assert {o["status"] for o in all_cancelled} == {"canceled"} and len(all_cancelled) == 2
    assert await in_thread(a.fetch_open_orders, SYMBOL) == []

    # ccxt's exceptions
    with pytest.raises(ccxt.InsufficientFunds):
        await in_thread(a.create_order, SYMBOL, "limit", "buy", 1000, 100)
    # ccxt maps no Backpack code to OrderNotFound: RESOURCE_NOT_FOUND is ExchangeNotAvailable
    with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):
        await in_thread(a.cancel_order, "999999", SYMBOL)
    with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):
        await in_thread(a.fetch_order, "999999", SYMBOL)
    with pytest.raises(ccxt.BadRequest):
        await in_thread(a.create_order, SYMBOL, "limit", "buy", 2_000_000, 100)  # > max


async def _trades(client: ccxt.backpack, count: int):
    trades = await in_thread(client.fetch_my_trades, SYMBOL)
    return trades if len(trades) >= count else None


async def test_batch_orders(exchange: Exchange):
    alice = await exchange.user(INR="1000")
    a = exchange.sync(alice.keys)
    placed = await in_thread(
        a.create_orders,
        [
            {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 1, "price": 10},
            {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 1000, "price": 10},
        ],
    )
    # ccxt sorts the parsed list by timestamp: the refused item (no timestamp) comes first
    by_code = {o["info"].get("code"): o for o in placed}
    assert by_code[None]["status"] == "open" and by_code[None]["amount"] == 1
    assert by_code["INSUFFICIENT_FUNDS"]["id"] is None
