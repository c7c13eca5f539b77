"""The Quart-Trio application: routes mounted, resources opened for the app's lifetime.

Startup runs one resources task in the app's nursery (``app.nursery``): it opens the engine
gateway, the PostgreSQL history reader and the credential store, hands the :class:`Api` back
with ``task_status.started`` and holds them open until shutdown sets its stop event. Opening them
in a task of their own, rather than entering their context managers inside the startup hook and
leaving them inside the shutdown hook, keeps every nursery and cancel scope in one task frame,
as trio requires.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from quart import Quart, Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from exchange import ratelimit_share
from exchange.api import metrics, routes_admin, routes_ops, routes_web
from exchange.api.router import Router, error_answer
from exchange.bus import RedisBridge
from exchange.credentials import CredentialStore
from exchange.errors import ErrorCode
from exchange.gateway import open_gateway
from exchange.history.queries import open_history_reader
from exchange.markets import MarketConfig, load_config
from exchange.settings import Settings
from exchange.surfaces.backend import Backend
from exchange.surfaces.backpack import rest as backpack_rest
from exchange.surfaces.native import market as native_market
from exchange.surfaces.native import orders as native_orders
from exchange.surfaces.signing_window import wall_clock_ms
from exchange.surfaces.state import Api

MAX_BODY_BYTES = 256 * 1024
PUBLIC_PATHS = {path for path, _, _ in native_market.ROUTES + routes_web.ROUTES}


def _route_first(app: Quart, router: Router) -> None:
    """Answer the API's routes from ASGI (see :class:`Router`); the rest goes to Quart.

    Every path is served with and without a trailing slash (a signed target keeps it: the
    signature covers ``raw_path``, which is left as sent).
    """
    inner = app.asgi_app

    async def asgi_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            path = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope, path=path.rstrip("/") or "/")
            if await router.dispatch(scope, receive, send):
                return None
        return await inner(scope, receive, send)

    app.asgi_app = asgi_app  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    *,
    config: MarketConfig | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
) -> QuartTrio:
    """The API application. Raises ConfigError for an unsafe host (``Settings.check_listen``)."""
    settings.check_listen(settings.api_host)
    config = config or load_config(settings.markets_file)
    app = QuartTrio("exchange.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    state: dict[str, object] = {}
    stop = trio.Event()
    stopped = trio.Event()

    async def run_resources(task_status=trio.TASK_STATUS_IGNORED) -> None:
        bridge = RedisBridge(settings.redis_url, max_threads=4)
        credentials = CredentialStore(bridge, settings.secret_key)
        try:
            async with (
                open_gateway(settings.redis_url, timeout_s=settings.engine_timeout_s) as gateway,
                open_history_reader(
                    settings.database_url,
                    timeout_s=settings.db_query_timeout_s,
                    connect_timeout_s=settings.db_connect_timeout_s,
                    application="exchange-api",
                    replica_url=settings.database_replica_url,
                    max_replica_lag_s=settings.replica_max_lag_s,
                    on_replica_state=metrics.observe_replica,
                ) as history,
            ):
                private_limiter, public_limiter = ratelimit_share.limiters(settings)
                api = Api(
                    settings=settings,
                    config=config,
                    backend=Backend(config, gateway, history),
                    credentials=credentials,
                    private_limiter=private_limiter,
                    public_limiter=public_limiter,
                    clock=trio.current_time,
                    clock_ms=clock_ms,
                )
                async with trio.open_nursery() as nursery:
                    # not awaited: Redis may be down at start (limits are then unshared)
                    nursery.start_soon(
                        ratelimit_share.share, private_limiter, settings.redis_url, bridge
                    )
                    task_status.started(api)
                    await stop.wait()
                    nursery.cancel_scope.cancel()
        finally:
            bridge.close()
            stopped.set()

    @app.before_serving
    async def startup() -> None:
        state["api"] = await app.nursery.start(run_resources)

    @app.after_serving
    async def shutdown() -> None:
        stop.set()
        with trio.move_on_after(10):
            await stopped.wait()

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = ErrorCode.NOT_FOUND if exc.code == 404 else ErrorCode.INVALID_REQUEST
        answer = error_answer(code, exc.description or exc.name, exc.code or 400)
        return Response(answer.body, status=answer.status, content_type=answer.content_type)

    def api_of() -> Api:
        return state["api"]  # type: ignore[return-value]

    router = Router(api_of, MAX_BODY_BYTES)
    for module in (native_market, native_orders, routes_admin, routes_ops, routes_web):
        for path, method, handler in module.ROUTES:
            router.add(path, method, handler, public=path in PUBLIC_PATHS)
    # /backpack/...: the same backend in Backpack's names
    for path, method, handler, public in backpack_rest.BackpackRest().routes():
        router.add(
            backpack_rest.PREFIX + path, method, handler, public=public, errors=backpack_rest.ERRORS
        )
    _route_first(app, router)
    routes_web.mount_page(app)  # the trading page: /, /trade/<MARKET>, /static/...
    return app
