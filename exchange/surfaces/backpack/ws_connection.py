"""One ``/backpack`` WebSocket connection: Backpack's SUBSCRIBE frames in, hub frames out.

A client sends ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [topics]}`` (no id, no ack);
private topics add ``"signature": [api_key, signature, timestamp, window]`` over
``instruction=subscribe&timestamp=…&window=…``. A refused request is answered
``{"id": null, "error": {"code": <integer>, "message"}}`` (ccxt ignores string codes).

The connection's life (outbox, reader, sender, heartbeat; a client too slow for its outbox is
closed with 1008) is :class:`exchange.ws.session.Session`'s. Depth deltas are checked for
contiguity per market: a gap closes the connection (1011) rather than corrupt the client's book.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from trio_websocket import WebSocketConnection

from exchange.markets import MarketConfig
from exchange.marketstats import INTERVALS_MS
from exchange.names import market_channel, user_channel
from exchange.surfaces.backpack import signing
from exchange.surfaces.backpack.ws_stream import PRIVATE_TOPICS, BackpackTopics, hub_topic
from exchange.ws.frames import Frame
from exchange.ws.hub import Hub
from exchange.ws.session import Limits, Session

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
MAX_TOPICS = 100
DEPTH_GAP = 1011
# Integer codes: ccxt rejects every pending watcher on an error frame with an integer code.
INVALID_REQUEST, INVALID_STREAM, INVALID_SIGNATURE = 4001, 4006, 4005

# base64 ED25519 public key → its user id, or None (the credential store's lookup)
UserForKey = Callable[[str], Awaitable[str | None]]


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_topic(topic: Any, config: MarketConfig) -> tuple[str, str | None, bool]:
    """``(kind, market, private)`` of a Backpack topic. Raises Refused(INVALID_STREAM)."""
    if not isinstance(topic, str):
        raise Refused(INVALID_STREAM, "topics are strings")
    for private in PRIVATE_TOPICS:
        if topic == private:
            return private, None, True
        if topic.startswith(private + "."):
            market = topic[len(private) + 1 :]
            if market in config.markets:
                return private, market, True
    kind, _, market = topic.partition(".")
    if kind == "kline":
        interval, _, market = market.partition(".")
        if interval not in INTERVALS_MS:
            raise Refused(INVALID_STREAM, f"unknown kline interval in {topic!r}")
    elif kind not in ("depth", "trade", "ticker", "bookTicker"):
        raise Refused(INVALID_STREAM, f"unknown stream {topic!r}")
    if market not in config.markets:
        raise Refused(INVALID_STREAM, f"unknown market in {topic!r}")
    return kind, market, False


class BackpackClient(Session):
    """A ``/backpack`` connection: Backpack's SUBSCRIBE frames, contiguous depth deltas."""

    def __init__(
        self,
        ws: WebSocketConnection,
        hub: Hub,
        config: MarketConfig,
        user_for_key: UserForKey,
        limits: Limits,
        now_ms: Callable[[], int],
        surface: BackpackTopics,
    ) -> None:
        super().__init__(ws, hub, config, limits)
        self.surface = surface
        self.user_for_key = user_for_key
        self.now_ms = now_ms
        self.held: dict[str, tuple[str | None, str]] = {}  # topic → (hub topic, channel)
        self.depth_ids: dict[str, int] = {}  # market → last delta's u

    def leave_all(self) -> None:
        for topic in list(self.held):
            self._leave(topic)

    def outgoing(self, batches: Iterable[tuple[Frame, ...]], out: list[bytes]) -> None:
        for frames in batches:
            for frame in frames:
                if frame.market is not None and not self._in_sequence(frame):
                    self.kick(DEPTH_GAP, "depth delta lost; resubscribe")
                    return
                out.append(frame.data)

    def _in_sequence(self, frame: Frame) -> bool:
        market = frame.market
        assert market is not None
        last = self.depth_ids.get(market)
        if last is not None and frame.first_id != last + 1:
            log.warning("depth gap on %s (%s → %s); closing", market, last, frame.first_id)
            return False
        self.depth_ids[market] = frame.last_id
        return True

    # --- requests ------------------------------------------------------------------------------

    async def handle(self, message: str | bytes) -> None:
        try:
            await self._handle(message)
        except Refused as exc:
            error = {"id": None, "error": {"code": exc.code, "message": exc.message}}
            self.deliver((Frame.of(orjson.dumps(error)),))

    async def _handle(self, raw: str | bytes) -> None:
        if len(raw) > MAX_FRAME_BYTES:
            raise Refused(INVALID_REQUEST, "frame too large")
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused(INVALID_REQUEST, "frame is not JSON") from None
        if not isinstance(request, dict) or request.get("method") not in (
            "SUBSCRIBE",
            "UNSUBSCRIBE",
        ):
            raise Refused(INVALID_REQUEST, "method must be SUBSCRIBE or UNSUBSCRIBE")
        topics = request.get("params")
        if not isinstance(topics, list) or not 0 < len(topics) <= MAX_TOPICS:
            raise Refused(INVALID_REQUEST, f"params must list 1 to {MAX_TOPICS} topics")
        parsed = {topic: parse_topic(topic, self.config) for topic in topics}
        if request["method"] == "UNSUBSCRIBE":
            for topic in parsed:
                self._leave(topic)
            return
        user_id = None
        if any(private for _, _, private in parsed.values()):
            user_id = await self._signer(request.get("signature"))
        for topic, (kind, market, private) in parsed.items():
            if topic in self.held:
                continue
            if kind == "account.rfqUpdate":  # no RFQs here: accepted, silent
                self.held[topic] = (None, "")
                continue
            if private:
                assert user_id is not None
                name, channel = hub_topic(topic, user_id), user_channel(user_id)
            else:
                assert market is not None
                name, channel = hub_topic(topic), market_channel(market)
            await self.hub.hold(channel)  # confirmed before any event is routed to us
            self.held[topic] = (name, channel)
            self.hub.register(self, name)
            if kind == "bookTicker":
                assert market is not None
                self.surface.book_tickers.joined(self.hub, self, market)

    def _leave(self, topic: str) -> None:
        entry = self.held.pop(topic, None)
        if entry is None or entry[0] is None:
            return
        name, channel = entry
        self.hub.unregister(self, name)
        self.hub.release(channel)
        if topic.startswith("depth."):
            self.depth_ids.pop(topic.removeprefix("depth."), None)
        elif topic.startswith("bookTicker."):
            self.surface.book_tickers.left(self.hub, self, topic.removeprefix("bookTicker."))

    async def _signer(self, signature: Any) -> str:
        """The user whose key signed ``instruction=subscribe``. Raises Refused."""
        if not (
            isinstance(signature, list)
            and len(signature) == 4
            and all(isinstance(part, str | int) for part in signature)
        ):
            raise Refused(INVALID_SIGNATURE, "private topics need signature [key, sig, ts, window]")
        key_b64, sig_b64, timestamp, window = (str(part) for part in signature)
        try:
            window_ms = signing.parse_window(window)
            signing.check_timestamp(timestamp, self.now_ms(), window_ms)
            raw_signature = signing.decode_signature(sig_b64)
            key = signing.public_key(key_b64)
        except signing.Ed25519SignatureError as exc:
            raise Refused(INVALID_SIGNATURE, exc.message) from None
        user_id = await self.user_for_key(key_b64)
        text = f"instruction={signing.SUBSCRIBE_INSTRUCTION}&timestamp={timestamp}&window={window}"
        if user_id is None or not signing.verify_any(key, raw_signature, [text.encode()]):
            raise Refused(INVALID_SIGNATURE, "invalid api key or signature")
        return user_id
