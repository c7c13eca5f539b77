"""The WebSocket server: market data and private updates fanned out to clients.

``server.run`` wires the pieces: ``hub`` (shared Redis subscriptions, render once, fan out),
``connection`` (one client: requests, outbox, heartbeat, depth gate), ``render`` (events → the
contract's frames), ``stats`` (tickers and klines from trades), ``protocol`` (requests and
stream names), ``frames`` (pre-framed bytes and the bounded outbox), ``auth`` and ``keepalive``.
"""

from exchange.ws.server import Options, run

__all__ = ["Options", "run"]
