"""The Backpack-compatible surface (``/backpack``): its names, units, ED25519 signatures and codes.

REST: :mod:`~exchange.surfaces.backpack.rest` (the handlers, mounted on the API's router),
:mod:`~exchange.surfaces.backpack.errors` (Backpack's codes), :mod:`~exchange.surfaces.backpack.signing`
(ED25519 signing texts and verification, pure) and :mod:`~exchange.surfaces.backpack.translate`
(names, units and shapes, pure). WebSocket: :mod:`~exchange.surfaces.backpack.ws_connection`
(SUBSCRIBE frames, signatures), :mod:`~exchange.surfaces.backpack.ws_stream` (topics and frames, a
:class:`~exchange.ws.hub.Surface` on the hub), :mod:`~exchange.surfaces.backpack.book` and
:mod:`~exchange.surfaces.backpack.book_ticker` (``bookTicker.M`` from a whole book), served by
:mod:`exchange.ws`.
"""
