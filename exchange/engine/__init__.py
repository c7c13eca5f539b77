"""The pure matching engine: no I/O, no clock, no randomness.

:class:`~exchange.engine.core.Engine` applies commands and answers queries; its state is order
books (:mod:`.book`), stop orders waiting for their trigger (:mod:`.stops`) and balances
(:mod:`.ledger`), and :mod:`.snapshot` turns it into bytes and back.
The trio shell around it is :mod:`.service` (wired by :mod:`.program`).
"""

from exchange.engine.core import Engine

__all__ = ["Engine"]
