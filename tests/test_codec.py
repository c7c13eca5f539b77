"""The codec round-trips every record a seeded flow makes, and refuses mistyped fields."""

from __future__ import annotations

import pytest

from exchange import codec
from exchange.dev.flow import START_TS_MS, Flow
from exchange.engine.core import Engine
from exchange.errors import ErrorCode
from exchange.markets import load_config
from exchange.models import GetBalances, GetDepth, GetOpenOrders, GetOrder, Rejection


def flow_records(commands: int) -> list:
    """Commands, replies and events of a seeded flow, and the queries' replies at its end."""
    config = load_config()
    markets = sorted(config.markets)[:3]
    flow = Flow(config, seed=7, users=50, markets=markets)
    engine = Engine(config)
    records: list = []
    for seq, command in enumerate(flow.funding + flow.commands(commands), start=1):
        outcome = engine.apply(command, seq=seq, ts=START_TS_MS + seq)
        records += [command, outcome.reply, *outcome.events]
    for query in (
        GetDepth(market=markets[0]),
        GetBalances(user_id="user1"),
        GetOpenOrders(user_id="user1"),
        GetOrder(user_id="user1", order_id=1),
    ):
        records += [query, engine.query(query)]
    return records


def test_every_record_of_a_flow_round_trips() -> None:
    records = flow_records(3_000)
    kinds = {type(record).__name__ for record in records}
    assert {"PlaceOrder", "CancelOrder", "OrderView", "TradeExecuted", "DepthChanged"} <= kinds
    assert {"BalanceChanged", "OrderUpdated", "Rejection", "Depth", "list", "dict"} <= kinds
    for record in records:
        raw = codec.encode(record)
        back = codec.decode(raw)
        assert back == record
        assert type(back) is type(record)
        assert codec.encode(back) == raw


def test_event_messages_decode_to_their_events() -> None:
    events = [r for r in flow_records(500) if type(r).__name__.endswith(("Updated", "Changed"))]
    raw = codec.dumps([codec.event_message(event, seq) for seq, event in enumerate(events)])
    assert codec.decode_events(raw) == events


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", 5.5),  # a fraction is never truncated into ticks
        ("price", "5"),
        ("price", True),
        ("post_only", 1),
        ("user_id", 5),
        ("side", "sideways"),
        ("side", 1),
    ],
)
def test_a_mistyped_field_is_refused(field: str, value: object) -> None:
    message = {"record": "PlaceOrder", "user_id": "u", "market": "TATA_INR", "side": "buy"}
    message["price"] = 100
    message["quantity"] = 1
    assert codec.from_message(dict(message)).price == 100
    message[field] = value
    with pytest.raises((TypeError, ValueError)):
        codec.from_message(message)


def test_an_unknown_record_or_missing_field_is_refused() -> None:
    with pytest.raises(KeyError):
        codec.decode(b'{"record": "Nope"}')
    with pytest.raises(KeyError):
        codec.decode(b'{"record": "CancelAll"}')
    rejection = codec.decode(b'{"record": "Rejection", "code": "INVALID_REQUEST", "message": "m"}')
    assert rejection == Rejection(ErrorCode.INVALID_REQUEST, "m")
    assert type(rejection.code) is ErrorCode
