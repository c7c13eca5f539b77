"""The database side: migrations, the events writer (``bin/db``) and the API's history queries.

- :mod:`exchange.db.migrate` applies ``sql/migrations`` (TimescaleDB when available).
- :mod:`exchange.db.writer` is the service that makes the engine's events permanent.
- :mod:`exchange.db.queries` holds :class:`HistoryQueries`, the reads the API serves.
- :mod:`exchange.db.statements` is every SQL statement, by name.
"""
