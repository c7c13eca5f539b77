"""The trading page: ``/`` and ``/trade/<MARKET>`` serve its HTML, ``/static/…`` its files, and
``GET /api/v1/config`` tells it where the WebSocket server is and which auth mode is on.

The page's files live in ``exchange/web/static`` (:mod:`exchange.web`; its chart library is
vendored there by a developer tool, :mod:`exchange.dev.webassets`, which this program never runs);
they go through Quart, which is plenty for a handful of files.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from quart import Quart, Response, send_from_directory

from exchange.surfaces.http import Req
from exchange.surfaces.params import check_params
from exchange.surfaces.state import Api
from exchange.web import STATIC

# Module scripts must be served as JavaScript (Python 3.11's table does not know .mjs).
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")


def _hostname(host_header: str) -> str:
    """The host part of a Host header (``[::1]:8000`` → ``[::1]``, ``a:8000`` → ``a``)."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header else "127.0.0.1"


async def config(api: Api, req: Req) -> Any:
    check_params(req.params, frozenset())
    host = _hostname(req.headers.get("host", ""))
    port = api.settings.ws_port
    return {"ws_url": f"ws://{host}:{port}/", "ws_port": port, "auth": api.settings.auth_mode}


ROUTES = [("/api/v1/config", "GET", config)]


def mount_page(app: Quart) -> None:
    """Add the page's routes to the Quart app (paths the API router does not answer)."""

    async def index() -> Response:
        response = await send_from_directory(STATIC, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def trade(market: str) -> Response:
        return await index()

    app.add_url_rule("/", "page_index", index, methods=["GET"])
    app.add_url_rule("/trade/<market>", "page_trade", trade, methods=["GET"])
    # Quart's own /static/<path> route serves the page's files: point it at them.
    app.static_folder = str(STATIC)
