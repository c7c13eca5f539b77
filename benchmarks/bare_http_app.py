"""The in-run reference of ``just bench-http``: a bare Quart-Trio app on hypercorn.

It serves the two paths the bench loads, doing only what any Quart-Trio endpoint must: POST
``/api/v1/order`` reads the JSON body with orjson and answers a JSON object the size of the
exchange's order reply; GET ``/api/v1/depth`` answers a JSON object the size of its depth. The
replies are samples the bench took from the running exchange (``BARE_ORDER_REPLY`` and
``BARE_DEPTH_REPLY``, JSON text in the environment, so hypercorn's worker processes see them
too). It is served with the exchange's own hypercorn configuration (trio worker, keep-alive,
worker count), so the two differ only in what happens behind the framework.

    BARE_ORDER_REPLY='{…}' BARE_DEPTH_REPLY='{…}' python benchmarks/bare_http_app.py PORT WORKERS
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial
from pathlib import Path

import orjson
import trio
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange.api.server import hypercorn_config  # noqa: E402
from exchange.programs import tune_gc, wait_for_stop_signal  # noqa: E402
from exchange.settings import Settings  # noqa: E402

JSON = "application/json"
log = logging.getLogger("bare_http_app")

app = QuartTrio(__name__)
ORDER_REPLY = orjson.loads(os.environ.get("BARE_ORDER_REPLY", "{}"))
DEPTH_REPLY = orjson.loads(os.environ.get("BARE_DEPTH_REPLY", "{}"))


@app.post("/api/v1/order")
async def order() -> Response:
    data = orjson.loads(await request.get_data())
    reply = {**ORDER_REPLY, "side": data["side"]}  # the reply depends on the request, as it would
    return Response(orjson.dumps(reply), content_type=JSON)


@app.get("/api/v1/depth")
async def depth() -> Response:
    return Response(orjson.dumps(DEPTH_REPLY), content_type=JSON)


def tuned_app() -> QuartTrio:
    """The app, with the garbage collector tuned as each exchange API worker tunes it."""
    tune_gc()
    return app


def main(argv: list[str]) -> int:
    port, workers = int(argv[0]), int(argv[1])
    config = hypercorn_config(Settings(api_port=port, api_workers=workers))
    config.application_path = "bare_http_app:tuned_app()"
    if workers == 1:
        stop = partial(wait_for_stop_signal, log)
        trio.run(partial(serve, tuned_app(), config, shutdown_trigger=stop))
        return 0
    from hypercorn.run import run

    return run(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
