"""The benchmark's seeded flow, small: deterministic, and every invariant holds along the way."""

from __future__ import annotations

from collections import Counter

from engine_harness import Harness

from exchange import codec
from exchange.dev.flow import Flow, Mix, stamp
from exchange.engine import snapshot
from exchange.markets import load_config
from exchange.models import CancelOrder, Deposit, OrderType, PlaceOrder, Rejection, TimeInForce

COMMANDS = 5_000


def test_same_seed_same_commands_other_seed_other_commands() -> None:
    config = load_config()
    first = Flow(config, seed=3, users=20).commands(300)
    again = Flow(config, seed=3, users=20).commands(300)
    other = Flow(config, seed=4, users=20).commands(300)
    assert [codec.encode(c) for c in first] == [codec.encode(c) for c in again]
    assert first != other


def test_a_small_flow_keeps_every_invariant() -> None:
    config = load_config()
    flow = Flow(config, seed=7, users=40)
    commands = flow.commands(COMMANDS)
    kinds = Counter(
        "cancel"
        if isinstance(c, CancelOrder)
        else "market"
        if c.type is OrderType.MARKET
        else "ioc"
        if c.time_in_force is TimeInForce.IOC
        else "limit"
        for c in commands
    )
    assert kinds["cancel"] > 0.2 * COMMANDS and kinds["market"] > 0.03 * COMMANDS
    assert kinds["limit"] + kinds["ioc"] > 0.6 * COMMANDS

    # Replaying funding + commands through a checking harness: per command, balance events equal
    # the ledger, nothing is negative and depth ids chain; every 500 commands, the full checks.
    h = Harness(config, check_books=False)
    deposits: Counter[str] = Counter()
    for command in flow.funding:
        h(command)
        deposits[command.asset] += command.amount
    rejected = trades = 0
    for i, command in enumerate(commands, 1):
        assert stamp(h.seq + 1) == (h.seq + 1, h.ts + 1)
        outcome = h(command)
        rejected += isinstance(outcome.reply, Rejection)
        trades += sum(type(e).__name__ == "TradeExecuted" for e in outcome.events)
        if i % 500 == 0:
            h.check_books()
            assert h.engine.ledger.totals() == deposits
            for book in h.engine.books.values():
                assert not book.is_crossed()
    assert trades > COMMANDS // 10
    assert rejected < 0.02 * COMMANDS  # cancels aim at open orders; users have the money
    assert snapshot.state_hash(h.engine) == snapshot.state_hash(flow.engine)
    assert flow.trades == trades
    assert all(isinstance(c, Deposit) for c in flow.funding)
    assert all(isinstance(c, (PlaceOrder, CancelOrder)) for c in commands)


def test_a_flow_with_stop_orders_triggers_them_and_keeps_every_invariant() -> None:
    config = load_config()
    flow = Flow(config, seed=11, users=40, mix=Mix(stop=0.05))
    commands = flow.commands(3_000)
    stops = [c for c in commands if isinstance(c, PlaceOrder) and c.trigger_price is not None]
    assert 0.03 * len(commands) < len(stops) < 0.07 * len(commands)
    assert flow.stops_triggered > len(stops) // 4
    h = Harness(config, check_books=False)
    for command in flow.funding:
        h(command)
    for i, command in enumerate(commands, 1):
        h(command)
        if i % 500 == 0:
            h.check_books()
    assert snapshot.state_hash(h.engine) == snapshot.state_hash(flow.engine)
