"""``bin/ws``: the WebSocket server, wired in one place.

    subscriber (Redis pub/sub thread) ─► hub (render once, fan out) ─► client outboxes ─► sockets
    gateway (engine queries) ─► depth snapshots
    PostgreSQL (once, before listening) ─► ticker/kline statistics (exchange.ws.seed)

:func:`run` serves until cancelled; :func:`main` runs it under ``trio.run`` and turns SIGINT and
SIGTERM into a cancellation, so every connection is closed (1001) within a bounded time and the
process exits 0. With ``WS_WORKERS`` > 1, :func:`main` instead supervises that many such servers
on one port (SO_REUSEPORT): one process's fan-out is bounded by a core (a ``send`` per client
per round), so capacity grows by adding processes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio
from trio_websocket import WebSocketRequest, WebSocketServer

from exchange import ratelimit_share
from exchange import settings as settings_module
from exchange.bus import RedisBridge
from exchange.credentials import CredentialStore
from exchange.errors import ConfigError, ServiceUnavailable
from exchange.gateway import open_gateway
from exchange.history.queries import open_history_reader
from exchange.markets import MarketConfig, load_config
from exchange.models import Depth, GetDepth, Rejection
from exchange.programs import cancel_on_stop_signal, configure_logging, supervise
from exchange.pubsub import open_subscriber
from exchange.surfaces.backend import Backend
from exchange.surfaces.backpack import ws_connection as backpack_connection
from exchange.surfaces.backpack.ws_stream import BackpackTopics
from exchange.surfaces.event_json import EventJson
from exchange.surfaces.native.ws_auth import Authenticator
from exchange.surfaces.native.ws_connection import Client
from exchange.surfaces.native.ws_topics import NativeTopics
from exchange.surfaces.signing_window import wall_clock_ms
from exchange.surfaces.state import Api
from exchange.ws import direct_write
from exchange.ws.hub import Hub
from exchange.ws.seed import seed_statistics
from exchange.ws.session import Limits

log = logging.getLogger("exchange.ws")

PATHS = ("/", "/ws")
# A worker is told so by its command line (never by the environment, which holds settings).
_WORKER_MAIN = "import sys; from exchange.ws.server import main; sys.exit(main(worker=True))"
BACKPACK_PATHS = ("/backpack", "/backpack/")


@attrs.frozen
class Options:
    """Knobs tests and benchmarks turn; production uses the defaults and Settings."""

    limits: Limits | None = None
    # Serve closed orders to order.status from PostgreSQL (settings.database_url); tests
    # without a database turn it off (a closed order's lookup then answers SERVICE_UNAVAILABLE).
    history: bool = True
    # SO_SNDBUF of accepted sockets (None: the kernel's autotuning). Tests shrink it so a client
    # that stops reading backs up into our outbox after kilobytes rather than megabytes.
    send_buffer_bytes: int | None = None
    # Seed tickers and klines from PostgreSQL (settings.database_url) before listening; tests
    # without a database turn it off.
    seed_statistics: bool = True


async def run(
    settings: settings_module.Settings,
    *,
    config: MarketConfig | None = None,
    options: Options = Options(),  # noqa: B008 - frozen
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port through ``task_status``.

    Raises ConfigError for an unsafe host (``Settings.check_listen``) before starting anything.
    """
    settings.check_listen(settings.ws_host)
    config = config or load_config(settings.markets_file)
    limits = options.limits or Limits(
        outbox_batches=settings.ws_send_queue, direct_write=_direct_write(settings)
    )
    # The credential store serves the native AUTH (apikey mode) and /backpack's ED25519
    # signatures (always: private Backpack topics are signed whatever EXCHANGE_AUTH is).
    bridge = RedisBridge(settings.redis_url, max_threads=2)
    store = CredentialStore(bridge, settings.secret_key)
    authenticator = Authenticator(
        settings.auth_mode, store.lookup if settings.auth_mode == "apikey" else None
    )
    user_for_key = store.ed25519_user
    try:
        async with (
            open_gateway(settings.redis_url, timeout_s=settings.engine_timeout_s) as gateway,
            open_subscriber(settings.redis_url) as subscriber,
            _open_history(settings, options.history) as history,
        ):
            # The trading methods' state, as the API builds it (exchange.api.app): the same
            # backend, credentials and rate-limit settings and buckets keyed alike.
            private_limiter, public_limiter = ratelimit_share.limiters(settings)
            api = Api(
                settings=settings,
                config=config,
                backend=Backend(config, gateway, history),
                credentials=store,
                private_limiter=private_limiter,
                public_limiter=public_limiter,
                clock=trio.current_time,
            )

            async def fetch_depth(market: str) -> Depth:
                reply = await gateway.query(GetDepth(market, None))
                if isinstance(reply, Rejection):
                    raise ServiceUnavailable(f"depth of {market}: {reply.message}")
                return reply

            rendered = EventJson(config)  # each event rendered once for both surfaces
            native = NativeTopics(config, rendered)
            backpack = BackpackTopics(config, rendered)
            hub = Hub(
                config,
                subscriber,
                fetch_depth,
                surfaces=[native, backpack],
                render_snapshot=native.snapshot_frame,
            )
            if options.seed_statistics:
                hub.hold_market_messages()  # until seeded: see exchange.ws.seed

            async def handle(request: WebSocketRequest) -> None:
                path = request.path.partition("?")[0]
                if path in BACKPACK_PATHS:
                    ws = await request.accept()
                    await backpack_connection.BackpackClient(
                        ws, hub, config, user_for_key, limits, wall_clock_ms, backpack
                    ).serve()
                    return
                if path not in PATHS:
                    await request.reject(404)
                    return
                ws = await request.accept()
                await Client(ws, hub, config, authenticator, limits, api).serve()

            async with trio.open_nursery() as nursery:
                await nursery.start(hub.run)
                # shared with every API and ws process (not awaited: Redis may be down)
                nursery.start_soon(
                    ratelimit_share.share, private_limiter, settings.redis_url, bridge
                )
                if options.seed_statistics:
                    await seed_statistics(hub, settings.database_url)
                listeners = await _listeners(settings)
                if options.send_buffer_bytes:
                    for listener in listeners:
                        # Accepted sockets inherit the listener's buffer size (Linux).
                        listener.socket.setsockopt(
                            socket.SOL_SOCKET, socket.SO_SNDBUF, options.send_buffer_bytes
                        )
                server = WebSocketServer(handle, listeners, disconnect_timeout=2.0)
                await nursery.start(server.run)
                log.info("listening on ws://%s:%d", settings.ws_host, server.port)
                task_status.started(server.port)
    finally:
        bridge.close()


class _NoHistory:
    """History for a server without PostgreSQL: every read is refused as a service down."""

    def __getattr__(self, name: str) -> Any:
        async def refuse(*_args: Any, **_kw: Any) -> Any:
            raise ServiceUnavailable("PostgreSQL is not configured for this server")

        return refuse


@contextlib.asynccontextmanager
async def _open_history(settings: settings_module.Settings, enabled: bool) -> AsyncIterator[Any]:
    if not enabled:
        yield _NoHistory()
        return
    async with open_history_reader(
        settings.database_url,
        timeout_s=settings.db_query_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        application="exchange-ws",
    ) as history:
        yield history


def _direct_write(settings: settings_module.Settings) -> bool:
    """Whether connections write pre-framed bytes directly (see exchange.ws.direct_write)."""
    if settings.ws_write != "direct":
        return False
    reason = direct_write.incompatibility()
    if reason is not None:
        log.warning("writing through trio-websocket's public API: %s", reason)
        return False
    return True


async def _listeners(settings: settings_module.Settings) -> list[trio.SocketListener]:
    """The listening sockets; with several workers, each binds WS_PORT with SO_REUSEPORT and
    the kernel spreads new connections evenly over them."""
    if settings.ws_workers <= 1:
        return await trio.open_tcp_listeners(settings.ws_port, host=settings.ws_host)
    listeners = []
    for family, kind, proto, _name, address in await trio.socket.getaddrinfo(
        settings.ws_host, settings.ws_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        sock = trio.socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        listeners.append(trio.SocketListener(sock))
    return listeners


async def _main(settings: settings_module.Settings) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_on_stop_signal, nursery.cancel_scope, log)
        await nursery.start(run, settings)


def main(*, worker: bool = False) -> int:
    """``bin/ws``; with ``WS_WORKERS`` > 1, it supervises that many ``worker`` processes."""
    configure_logging("ws")
    try:
        settings = settings_module.load()
        settings.check_listen(settings.ws_host)
        load_config(settings.markets_file)
    except ConfigError as exc:
        print(f"ws: {exc}", file=sys.stderr)
        return 2
    if settings.ws_workers > 1 and not worker:
        if settings.ws_port == 0:
            print("ws: WS_WORKERS > 1 needs a fixed WS_PORT", file=sys.stderr)
            return 2
        # Each worker is a whole server (its own Redis subscriptions, hub and depth gates).
        command = [sys.executable, "-c", _WORKER_MAIN]
        return supervise(command, settings.ws_workers, {}, log)
    trio.run(_main, settings)
    return 0
