"""The native surface (the contract's shapes).

WebSocket: :mod:`~exchange.surfaces.native.ws_protocol` (requests and stream names, pure),
:mod:`~exchange.surfaces.native.ws_render` (events → frames), :mod:`~exchange.surfaces.native.ws_auth`
(AUTH) and :mod:`~exchange.surfaces.native.ws_connection` (a connection: requests, streams,
the depth gate), served by :mod:`exchange.ws`.
"""
