"""``bin/ws``: the WebSocket program that serves the surfaces' streams.

``server.run`` wires the pieces: ``hub`` (shared Redis subscriptions, render once, fan out; its
public interface is what surfaces use), ``session`` (one connection's life: outbox, reader,
sender, heartbeat), ``frames`` (pre-framed bytes and the bounded outbox), ``direct_write`` (the
one module that writes through trio-websocket's internals), ``keepalive`` and ``seed`` (the
statistics' start from PostgreSQL; the statistics themselves are :mod:`exchange.marketstats`).
The surfaces themselves (requests, rendering, depth gates) are in :mod:`exchange.surfaces.native`
and :mod:`exchange.surfaces.backpack`.

The package imports none of its modules: the surfaces import ``exchange.ws.frames`` and
``exchange.ws.hub``, and the server imports the surfaces, so importing the server here would
make a surface module imported first (``exchange.surfaces.backpack.book_ticker``) import
itself half-initialised. Run the program from :mod:`exchange.ws.server`.
"""
