"""The fan-out hub: shared Redis subscriptions, topics, and one render per event.

Its public interface, all a surface needs (nothing else of it is meant to be touched):

- channels: :meth:`Hub.hold` / :meth:`Hub.release` a pub/sub channel (counted references);
- topics: :meth:`Hub.register` / :meth:`Hub.unregister` a :class:`Client` on a topic,
  :meth:`Hub.wants` / :meth:`Hub.subscribers` to ask who listens, :meth:`Hub.publish` a topic's
  pre-framed bytes (delivered once per round, see below);
- depth: :meth:`Hub.request_snapshot` (a snapshot frame, rendered once per round by the
  ``render_snapshot`` the server gives, delivered to a client) and :meth:`Hub.request_depth` (the engine's :class:`~exchange.models.Depth` itself,
  for a surface that keeps its own book);
- the live statistics of each market (:attr:`Hub.stats`), read by every surface;
- :class:`Surface`: what a surface plugs in (``surfaces=``) to render the events under its own
  topics. The hub itself knows no surface's shapes.

Clients register for topics (a stream name; private topics carry the user: ``orders#42``). Each
topic lives on one pub/sub channel; the hub holds one Redis subscription per channel, counted
by the topics on it: the first registration subscribes (and waits for Redis's confirmation),
the last one leaving unsubscribes. Market channels are also held for the life of the server by
the ticker/kline statistics, which must see every trade whether anyone listens or not.

For every pub/sub message the surfaces render each event once, for the topics that have
subscribers, and the hub hands each subscriber a tuple of pre-framed bytes (``Client.deliver`` never
blocks). Depth snapshots are fetched from the engine in coalesced rounds per market: clients
that asked while a fetch was in flight share the next one, so a thousand clients subscribing at
once cost a few engine queries, not a thousand.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

import trio

from exchange import codec
from exchange.markets import MarketConfig
from exchange.marketstats import MarketStats
from exchange.models import Depth, Event
from exchange.names import MARKET_CHANNEL_PREFIX, USER_CHANNEL_PREFIX, market_channel
from exchange.pubsub import Subscriber
from exchange.retry import retry
from exchange.ws.frames import Frame, merged

log = logging.getLogger(__name__)

MARKET_PREFIX = MARKET_CHANNEL_PREFIX
USER_PREFIX = USER_CHANNEL_PREFIX
SNAPSHOT_RETRY_S = 1.0

FetchDepth = Callable[[str], Awaitable[Depth]]


class Client(Protocol):
    """What the hub needs of a connection: frames handed over without blocking."""

    def deliver(self, frames: tuple[Frame, ...]) -> None: ...


class DepthWaiter(Protocol):
    """Something waiting for a market's depth snapshot as the engine gave it."""

    def take_depth(self, depth: Depth) -> None: ...


class Surface(Protocol):
    """A surface's rendering of the engine's events, called inside the hub's dispatch in the
    order given (the native one first: it folds the trades into :attr:`Hub.stats`). It
    publishes to its own topics with :meth:`Hub.publish`; it must not block. Events are the
    engine's records (integers); each surface renders its own shapes from them."""

    def market_events(self, hub: Hub, symbol: str, events: list[Event]) -> None: ...

    def user_events(self, hub: Hub, user_id: str, events: list[Event]) -> None: ...


def private_topic(stream: str, user_id: str) -> str:
    return f"{stream}#{user_id}"


class _Channel:
    __slots__ = ("changed", "ready", "refs", "subscribed")

    def __init__(self) -> None:
        self.refs = 0
        self.subscribed = False
        self.ready = trio.Event()  # set while subscribed with refs > 0
        self.changed = trio.Event()


class Hub:
    """One process's fan-out: Redis subscriptions shared by every connection, each event
    rendered once per topic, frames handed to each subscriber once per round."""

    def __init__(
        self,
        config: MarketConfig,
        subscriber: Subscriber,
        fetch_depth: FetchDepth,
        surfaces: Iterable[Surface] = (),
        render_snapshot: Callable[[Depth], Frame] | None = None,
    ) -> None:
        self.config = config
        self.subscriber = subscriber
        self.fetch_depth = fetch_depth
        self.topics: dict[str, set[Client]] = {}
        self.channels: dict[str, _Channel] = {}
        self.stats = {symbol: MarketStats(market) for symbol, market in config.markets.items()}
        # market → (clients awaiting a snapshot frame, surfaces awaiting the Depth itself)
        self._snapshot_waiters: dict[str, tuple[list[Client], list[DepthWaiter]]] = {}
        self._nursery: trio.Nursery | None = None
        self.messages_in = 0
        self._pending: dict[Client, tuple[Frame, ...]] = {}
        # Each surface renders the events under its own topics, in this order; the native one
        # comes first: it folds the trades into the statistics (exchange.surfaces.native.ws_topics).
        self.surfaces: tuple[Surface, ...] = tuple(surfaces)
        self.render_snapshot = render_snapshot  # Depth → the frame request_snapshot delivers
        # While the statistics are seeded from PostgreSQL (exchange.ws.seed), market messages
        # wait here instead of being dispatched; None once live (see release_market_messages).
        self.held_market_messages: list[tuple[str, bytes]] | None = None

    # --- channels and topics -------------------------------------------------------------------

    async def hold(self, channel: str) -> None:
        """Take a reference on ``channel``; returns once its subscription is confirmed."""
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = _Channel()
            assert self._nursery is not None, "Hub.run is not running"
            self._nursery.start_soon(self._manage, channel, state)
        state.refs += 1
        state.changed.set()
        try:
            await state.ready.wait()
        except BaseException:
            self.release(channel)
            raise

    def release(self, channel: str) -> None:
        """Drop a reference (never blocks; the last one unsubscribes in the background)."""
        state = self.channels.get(channel)
        if state is None or state.refs <= 0:
            return
        state.refs -= 1
        if state.refs == 0:
            state.ready = trio.Event()
        state.changed.set()

    async def _manage(self, channel: str, state: _Channel) -> None:
        # One task per channel owns its Redis subscription, so a quick release/hold never runs
        # SUBSCRIBE and UNSUBSCRIBE out of order. It converges on "subscribed iff refs > 0".
        while True:
            changed = state.changed = trio.Event()
            if state.refs > 0:
                if not state.subscribed:
                    await self.subscriber.subscribe(channel)
                    state.subscribed = True
                if state.refs > 0:
                    state.ready.set()
            elif state.subscribed:
                await self.subscriber.unsubscribe(channel)
                state.subscribed = False
                continue
            else:
                del self.channels[channel]
                return
            await changed.wait()

    def register(self, client: Client, topic: str) -> None:
        self.topics.setdefault(topic, set()).add(client)

    def unregister(self, client: Client, topic: str) -> None:
        clients = self.topics.get(topic)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self.topics[topic]

    def wants(self, topic: str) -> bool:
        """Whether any client is registered on ``topic`` (render nothing for nobody)."""
        return topic in self.topics

    def subscribers(self, topic: str) -> Collection[Client]:
        """The clients registered on ``topic`` (a view: do not keep it)."""
        return self.topics.get(topic, ())

    # --- snapshots -----------------------------------------------------------------------------

    def request_snapshot(self, market: str, client: Client) -> None:
        """Queue ``client`` for the next depth snapshot frame of ``market`` (taken after this
        call)."""
        self._waiters(market)[0].append(client)

    def request_depth(self, market: str, waiter: DepthWaiter) -> None:
        """Hand ``waiter`` the next depth snapshot of ``market`` (taken after this call), from
        the same coalesced engine query the snapshot frames come from."""
        self._waiters(market)[1].append(waiter)

    def _waiters(self, market: str) -> tuple[list[Client], list[DepthWaiter]]:
        waiters = self._snapshot_waiters.get(market)
        if waiters is None:
            waiters = self._snapshot_waiters[market] = ([], [])
            assert self._nursery is not None, "Hub.run is not running"
            self._nursery.start_soon(self._snapshot_rounds, market)
        return waiters

    async def _snapshot_rounds(self, market: str) -> None:
        # Waiters present when a fetch starts get its result; later ones wait for the next.
        while any(self._snapshot_waiters[market]):
            clients, depth_waiters = self._snapshot_waiters[market]
            self._snapshot_waiters[market] = ([], [])
            depth = await retry(  # engine down or slow: keep the clients waiting
                self.fetch_depth,
                market,
                retry_on=Exception,
                on_failure=lambda exc, _delay, _n: log.warning(
                    "depth snapshot of %s failed (%r); retrying", market, exc
                ),
                delays=lambda: itertools.repeat(SNAPSHOT_RETRY_S),
            )
            for waiter in depth_waiters:
                waiter.take_depth(depth)
            if clients:
                assert self.render_snapshot is not None, "snapshot frames need render_snapshot"
                frames = (self.render_snapshot(depth),)
                for client in clients:
                    client.deliver(frames)
        del self._snapshot_waiters[market]

    # --- fan-out -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume the feed until cancelled; holds every market channel for the statistics."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._consume)
            for symbol in self.config.markets:
                await self.hold(market_channel(symbol))
            task_status.started()

    async def _consume(self) -> None:
        reconnects = self.subscriber.reconnects
        async for message in self.subscriber:
            # Whatever else arrived meanwhile joins this round: each client then gets one write
            # for all of it. At light load a round is one message and adds no delay; under load
            # rounds grow instead of queueing behind each other, since a round costs a syscall
            # per client however many messages it carries.
            for channel, data in (message, *self.subscriber.receive_ready()):
                self._render(channel, data)
            self.flush()
            if self.subscriber.reconnects != reconnects:
                # Messages were lost: depth clients notice by update id; say so once.
                reconnects = self.subscriber.reconnects
                log.warning("pub/sub reconnected; messages published meanwhile are lost")

    def hold_market_messages(self) -> None:
        """Keep market messages back (before :meth:`run`, so none is missed) until released."""
        self.held_market_messages = []

    def release_market_messages(self) -> None:
        """Dispatch the held market messages in order and go live again."""
        held, self.held_market_messages = self.held_market_messages or [], None
        for channel, data in held:
            self.dispatch(channel, data)

    def dispatch(self, channel: str, data: bytes) -> None:
        """Render one pub/sub message (an engine batch's events) and deliver its frames."""
        self._render(channel, data)
        self.flush()

    def _render(self, channel: str, data: bytes) -> None:
        """Render one pub/sub message for the topics that want it, into the pending round."""
        if self.held_market_messages is not None and channel.startswith(MARKET_PREFIX):
            self.held_market_messages.append((channel, data))
            return
        self.messages_in += 1
        try:
            events = codec.decode_events(data)
            if channel.startswith(MARKET_PREFIX):
                symbol = channel[len(MARKET_PREFIX) :]
                for surface in self.surfaces:
                    surface.market_events(self, symbol, events)
            elif channel.startswith(USER_PREFIX):
                user_id = channel[len(USER_PREFIX) :]
                for surface in self.surfaces:
                    surface.user_events(self, user_id, events)
        except Exception:  # one bad message must not stop the fan-out
            # Frames it already rendered are whole and stay; depth clients re-sync by update id.
            log.exception("cannot dispatch a message of %s", channel)

    def publish(self, topic: str, frames: tuple[Frame, ...]) -> None:
        """Hand ``frames`` to every client on ``topic``, in this round's delivery.

        Collected per client and delivered once per round (see ``_consume``): a client on both
        trade@M and depth@M gets one write per round, not one per topic and message. Outside a
        dispatch (e.g. a snapshot task), call :meth:`flush` after publishing.
        """
        frames = merged(frames)  # once here, not once per client
        pending = self._pending
        for client in self.topics.get(topic, ()):
            if client in pending:
                pending[client] += frames
            else:
                pending[client] = frames

    def flush(self) -> None:
        """Deliver what was published since the last round."""
        pending, self._pending = self._pending, {}
        for client, frames in pending.items():
            client.deliver(frames)
