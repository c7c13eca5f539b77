"""The hub's fan-out rounds: messages waiting together reach each client in one delivery."""

from __future__ import annotations

import orjson
import trio
from ws_helpers import trade

from exchange import codec
from exchange.bus import RedisBridge
from exchange.markets import load_config
from exchange.names import market_channel
from exchange.pubsub import open_subscriber
from exchange.surfaces.native.ws_topics import NativeTopics
from exchange.ws.frames import Frame
from exchange.ws.hub import Hub

CONFIG = load_config()
MARKET = "TATA_INR"


class Recorder:
    """A client that keeps each delivery it gets."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[Frame, ...]] = []

    def deliver(self, frames: tuple[Frame, ...]) -> None:
        self.deliveries.append(frames)


def payload(frame: Frame) -> dict:
    """The JSON inside one of our unmasked text frames."""
    size = frame.data[1] & 0x7F
    return orjson.loads(frame.data[{126: 4, 127: 10}.get(size, 2) :])


def trade_message(trade_id: int) -> bytes:
    event = trade(
        trade_id, market=MARKET, price=100, quantity=1, timestamp=1_700_000_000_000 + trade_id
    )
    return orjson.dumps([codec.event_message(event, seq=trade_id)])


async def test_messages_that_arrived_together_go_out_in_one_delivery(redis_url):
    channel = market_channel(MARKET)
    async with (
        RedisBridge(redis_url) as bus,
        open_subscriber(redis_url) as subscriber,
        trio.open_nursery() as nursery,
    ):
        hub = Hub(CONFIG, subscriber, fetch_depth=None, surfaces=[NativeTopics(CONFIG)])  # type: ignore[arg-type]
        client = Recorder()
        hub.register(client, f"trade@{MARKET}")  # type: ignore[arg-type]
        await subscriber.subscribe(channel)
        for trade_id in (1, 2, 3):
            await bus.call(bus.client.publish, channel, trade_message(trade_id))
        # All three wait in the subscriber before the hub starts consuming.
        with trio.fail_after(5):
            while subscriber._receive.statistics().current_buffer_used < 3:
                await trio.sleep(0.01)
        await nursery.start(hub.run)
        with trio.fail_after(5):
            while not client.deliveries:
                await trio.sleep(0.01)
        await trio.sleep(0.1)  # nothing more comes
        assert len(client.deliveries) == 1
        trades = [payload(frame)["data"]["id"] for frame in client.deliveries[0]]
        assert trades == [1, 2, 3]

        await bus.call(bus.client.publish, channel, trade_message(4))  # alone: its own round
        with trio.fail_after(5):
            while len(client.deliveries) < 2:
                await trio.sleep(0.01)
        assert len(client.deliveries[1]) == 1
        nursery.cancel_scope.cancel()
