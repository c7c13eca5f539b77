"""The Backpack-compatible surface (``/backpack``).

WebSocket: :mod:`~exchange.surfaces.backpack.ws_connection` (SUBSCRIBE frames, signatures),
:mod:`~exchange.surfaces.backpack.ws_stream` (topics and frames, a
:class:`~exchange.ws.hub.Surface` on the hub), :mod:`~exchange.surfaces.backpack.book` and
:mod:`~exchange.surfaces.backpack.book_ticker` (``bookTicker.M`` from a whole book), served by
:mod:`exchange.ws`. REST, signing and translation: :mod:`exchange.backpack` (for now).
"""
