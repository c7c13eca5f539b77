"""The native surface (the contract's shapes).

REST: :mod:`~exchange.surfaces.native.orders` and :mod:`~exchange.surfaces.native.market` (the
``/api/v1`` routes), :mod:`~exchange.surfaces.native.auth` (HMAC-signed or dev-mode callers),
:mod:`~exchange.surfaces.native.signing` (HMAC-SHA256, pure) and
:mod:`~exchange.surfaces.native.errors` (the contract's error shape).

WebSocket: :mod:`~exchange.surfaces.native.ws_protocol` (requests and stream names, pure),
:mod:`~exchange.surfaces.native.ws_render` (events → frames), :mod:`~exchange.surfaces.native.ws_auth`
(AUTH), :mod:`~exchange.surfaces.native.ws_trading` (the trading methods, each calling its REST
twin's surface function) and :mod:`~exchange.surfaces.native.ws_connection` (a connection:
requests in order, streams, the depth gate), served by :mod:`exchange.ws`.
"""
