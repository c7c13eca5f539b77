"""Backpack's shapes of stop orders, from the real engine's events (pure: no servers).

Placed: ``triggerPlaced`` / ``TriggerPending`` with the trigger price as ``P`` (what ccxt.pro
reads); triggered: an ordinary ``orderAccepted`` then the fill; a triggered market buy that
finds no quote: ``triggerFailed`` / ``TriggerFailed``, in REST's order object as well."""

from __future__ import annotations

from exchange.engine.core import Engine
from exchange.markets import load_config
from exchange.models import Deposit, OrderType, OrderUpdated, PlaceOrder, Side
from exchange.surfaces.backpack.translate import order_json
from exchange.surfaces.backpack.ws_stream import BackpackTopics
from exchange.views import event_json

CONFIG = load_config()


def test_stop_order_frames_and_statuses() -> None:
    engine = Engine(CONFIG)
    topics = BackpackTopics(CONFIG)
    seq = 0
    frames: dict[str, list[tuple[str, str]]] = {}

    def apply(command):
        nonlocal seq
        seq += 1
        outcome = engine.apply(command, seq=seq, ts=1_700_000_000_000 + seq)
        for event in outcome.events:
            if isinstance(event, OrderUpdated):
                order = event_json(CONFIG, event)["order"]
                for frame in topics.order_frames(order):
                    frames.setdefault(frame["i"], []).append((frame["e"], frame["X"]))
                    if frame["e"] == "triggerPlaced":
                        assert frame["P"] == order["trigger_price"]
        return outcome.reply

    for user in ("1", "2"):
        apply(Deposit(user, "INR", 10**9))
        apply(Deposit(user, "TATA", 10**9))
    apply(PlaceOrder("1", "TATA_INR", Side.SELL, OrderType.LIMIT, 10_000, 100))
    apply(PlaceOrder("2", "TATA_INR", Side.BUY, OrderType.LIMIT, 10_000, 100))  # last: 100
    stop = apply(
        PlaceOrder("1", "TATA_INR", Side.SELL, OrderType.MARKET, quantity=100, trigger_price=9_900)
    )
    broke = apply(  # user 3 holds no INR: a stop market buy by quantity locks nothing
        PlaceOrder("3", "TATA_INR", Side.BUY, OrderType.MARKET, quantity=100, trigger_price=9_950)
    )
    assert order_json(CONFIG, stop)["status"] == "TriggerPending"
    assert order_json(CONFIG, stop)["triggerPrice"] == "99"
    assert order_json(CONFIG, stop)["triggerQuantity"] == "1"
    apply(PlaceOrder("2", "TATA_INR", Side.BUY, OrderType.LIMIT, 9_800, 100))
    apply(PlaceOrder("2", "TATA_INR", Side.BUY, OrderType.LIMIT, 9_900, 100))
    apply(PlaceOrder("1", "TATA_INR", Side.SELL, OrderType.LIMIT, 9_900, 100))  # falls to 99

    assert frames[str(stop.order_id)] == [
        ("triggerPlaced", "TriggerPending"),
        ("orderAccepted", "New"),
        ("orderFill", "Filled"),
    ]
    assert frames[str(broke.order_id)] == [
        ("triggerPlaced", "TriggerPending"),
        ("triggerFailed", "TriggerFailed"),
    ]
    failed = engine.orders[broke.order_id].view()
    assert order_json(CONFIG, failed)["status"] == "TriggerFailed"
    assert order_json(CONFIG, failed)["triggeredAt"] == failed.triggered_at is not None
