"""Realistic events-stream entries for the db tests and benchmark, made by the real engine.

A seeded :class:`~exchange.dev.flow.Flow` makes the commands; a fresh engine applies them
with the flow's stamps, and every ``batch_commands`` commands become one entry, as the engine
service writes them: field ``events`` = JSON array of ``codec.event_message`` dicts (with ``seq``).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import attrs
import orjson
import redis

from exchange import codec, names
from exchange.dev.flow import START_TS_MS, Flow, Mix, stamp
from exchange.engine.core import Engine
from exchange.markets import MarketConfig
from exchange.models import FundsTransferred
from exchange.views import event_json

# More crossing orders than the default mix: more trades per command.
TRADING_MIX = Mix(passive=0.45, cancel=0.1, crossing=0.4, market=0.05)


@attrs.define
class EventLog:
    """Entries in stream order, and what the tables must hold once they are all written."""

    entries: list[bytes] = attrs.Factory(list)
    trades: dict[int, dict] = attrs.Factory(dict)  # trade id → trade event
    orders: dict[int, dict] = attrs.Factory(dict)  # order id → newest order object
    users: dict[int, str] = attrs.Factory(dict)  # order id → its owner
    transfers: int = 0  # deposits and withdrawals made
    engine: Engine | None = None  # the engine after every command (its balances)

    def ledger_totals(self) -> dict[tuple[str, str], int]:
        """(user, asset) → available + locked, every balance the engine holds that is not 0."""
        return {
            (user, asset): available + locked
            for user, held in self.engine.ledger.balances.items()
            for asset, (available, locked) in held.items()
            if available + locked
        }

    def trade_totals(self) -> dict[str, tuple[int, Decimal]]:
        """Per market: (number of trades, sum of quantities)."""
        totals: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
        for trade in self.trades.values():
            total = totals[trade["market"]]
            total[0] += 1
            total[1] += Decimal(trade["quantity"])
        return {market: (count, qty) for market, (count, qty) in totals.items()}


def make_events(
    config: MarketConfig,
    *,
    seed: int,
    commands: int,
    batch_commands: int = 50,
    users: int = 50,
    min_trades: int = 0,
    start_ts_ms: int = START_TS_MS,
) -> EventLog:
    """Events of ``commands`` trading commands (more while fewer than ``min_trades`` trades).

    ``start_ts_ms`` dates the flow (one command per millisecond from it; default: the flow's own
    fixed start, so the tests' events are the same in every run).
    """
    flow = Flow(config, seed=seed, users=users, mix=TRADING_MIX)
    engine = Engine(config)
    log = EventLog(engine=engine)
    pending: list[dict] = []
    seq = 0

    def apply(command) -> None:
        nonlocal seq
        seq += 1
        seq_, ts = stamp(seq)
        ts += start_ts_ms - START_TS_MS
        for event in engine.apply(command, seq=seq_, ts=ts).events:
            pending.append(codec.event_message(event, seq_))
            if type(event) is FundsTransferred:
                log.transfers += 1
                continue
            rendered = event_json(config, event)  # what PostgreSQL must hold, as decimals
            if rendered["type"] == "trade":
                log.trades[rendered["id"]] = rendered
            elif rendered["type"] == "order":
                order_id = int(rendered["order"]["order_id"])
                log.orders[order_id] = rendered["order"]
                log.users[order_id] = rendered["user_id"]
        if seq % batch_commands == 0:
            flush()

    def flush() -> None:
        if pending:
            log.entries.append(orjson.dumps(pending))
            pending.clear()

    for command in flow.funding:
        apply(command)
    made = 0
    while made < commands or len(log.trades) < min_trades:
        apply(flow.next_command())
        made += 1
    flush()
    return log


def xadd_entries(client: redis.Redis, entries: list[bytes], *, chunk: int = 1000) -> list[bytes]:
    """Append entries to the events stream as the engine does; returns their ids."""
    ids: list[bytes] = []
    for start in range(0, len(entries), chunk):
        pipe = client.pipeline(transaction=False)
        for payload in entries[start : start + chunk]:
            pipe.xadd(names.EVENT_STREAM, {names.EVENTS_FIELD: payload})
        ids.extend(pipe.execute())
    return ids
