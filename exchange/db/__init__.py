"""The db program (``bin/db``): migrations and the writer that makes the engine's events permanent.

- :mod:`exchange.db.migrate` applies ``sql/migrations`` (TimescaleDB when available).
- :mod:`exchange.db.program` is ``bin/db``: migrate, configure archival, run the consumer.
- :mod:`exchange.db.consumer` reads the events stream, writes batches, acknowledges them.
- :mod:`exchange.db.copy_batch` is one batch's transaction, and the candles' settle.
- :mod:`exchange.db.rows` decodes stream entries into table rows.
- :mod:`exchange.db.archival` sets compression and retention (TimescaleDB).

The SQL and the connections are the history library's (:mod:`exchange.history`), shared with
the api and ws programs, which read the history through it.
"""
