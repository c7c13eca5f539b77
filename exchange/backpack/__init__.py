"""A Backpack-compatible surface (REST under ``/backpack`` on the API port, WebSocket under
``/backpack`` on the WS port) over the same engine, users, balances, orders and trades.

- :mod:`exchange.backpack.signing`: ED25519 signing texts and verification (pure).
- :mod:`exchange.backpack.translate`: names, units, shapes and error codes (pure).
- :mod:`exchange.backpack.rest`: the REST handlers, mounted on the API's router.
- The WebSocket side moved to :mod:`exchange.surfaces.backpack`.
"""
