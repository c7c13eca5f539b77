"""The surfaces: adapters that parse a client's requests, render replies and events in their own
shapes and map error codes, over the same engine, records and history.

- :mod:`exchange.surfaces.native`: the contract's own surface (``/`` and ``/ws``).
- :mod:`exchange.surfaces.backpack`: the Backpack-compatible one (``/backpack``).

The programs that serve them (``exchange.ws``, ``exchange.api``) own the I/O; a surface never
imports another surface's modules.
"""
