"""exchange: a centralized trading exchange.

The shared library of the four programs (``bin/engine``, ``bin/api``, ``bin/ws``, ``bin/db``):
markets and money (:mod:`exchange.markets`, :mod:`exchange.money`), the records that travel
between them (:mod:`exchange.models`, :mod:`exchange.codec`) and the pure matching engine
(:mod:`exchange.engine`).
"""
