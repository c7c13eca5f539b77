"""``bin/api``: serve the application with hypercorn's trio worker.

One worker (``API_WORKERS=1``, the default) runs in this process under ``trio.run``; SIGINT and
SIGTERM trigger hypercorn's graceful shutdown (finish in-flight requests, then the app's
shutdown closes the gateway and pools). More workers are separate processes started by
hypercorn's supervisor on one shared listening socket, each with its own gateway (its own reply
stream), so replies always reach the process that waits for them.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from exchange import settings as settings_module
from exchange.api.app import create_app
from exchange.errors import ConfigError
from exchange.programs import configure_logging, tune_gc, wait_for_stop_signal

log = logging.getLogger("exchange.api")


def hypercorn_config(settings: settings_module.Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.api_host}:{settings.api_port}"]
    config.worker_class = "trio"
    config.workers = settings.api_workers
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 75
    # hypercorn closes a keep-alive connection after 1,000 requests by default; a trading
    # client's connection serves far more (closing it costs a reconnect and a latency spike)
    config.keep_alive_max_requests = 1_000_000
    config.graceful_timeout = 10
    config.application_path = "exchange.api.server:app_from_env()"
    return config


def app_from_env():  # type: ignore[no-untyped-def]
    """The application built from the environment (what each worker process loads)."""
    app = create_app(settings_module.load())
    tune_gc()
    return app


async def _serve_one(app, config: Config) -> None:  # type: ignore[no-untyped-def]
    await serve(app, config, shutdown_trigger=partial(wait_for_stop_signal, log))


def main() -> int:
    configure_logging("api")
    try:
        settings = settings_module.load()
        settings.check_listen(settings.api_host)
    except ConfigError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 2
    config = hypercorn_config(settings)
    log.info(
        "listening on http://%s:%s (auth=%s, workers=%d)",
        settings.api_host,
        settings.api_port,
        settings.auth_mode,
        settings.api_workers,
    )
    if settings.api_workers == 1:
        app = create_app(settings)
        tune_gc()
        trio.run(_serve_one, app, config)
        return 0
    from hypercorn.run import run

    # Workers write metrics to files here so /metrics can sum them (see exchange.api.metrics).
    # PROMETHEUS_MULTIPROC_DIR is prometheus_client's own protocol, read by the library in
    # each worker, not one of our settings: the environment is how it reaches the workers.
    with tempfile.TemporaryDirectory(prefix="exchange-api-metrics-") as metrics_dir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        return run(config)
