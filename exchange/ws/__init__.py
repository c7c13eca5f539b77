"""``bin/ws``: the WebSocket program that serves the surfaces' streams.

``server.run`` wires the pieces: ``hub`` (shared Redis subscriptions, render once, fan out; its
public interface is what surfaces use), ``session`` (one connection's life: outbox, reader,
sender, heartbeat), ``frames`` (pre-framed bytes and the bounded outbox), ``direct_write`` (the
one module that writes through trio-websocket's internals), ``keepalive``, ``stats`` and
``seed`` (tickers and klines). The surfaces themselves (requests, rendering, depth gates) are in
:mod:`exchange.surfaces.native` and :mod:`exchange.surfaces.backpack`.
"""

from exchange.ws.server import Options, run

__all__ = ["Options", "run"]
