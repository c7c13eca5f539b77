"""The history in PostgreSQL as a library: connections, every SQL statement, the reads.

- :mod:`exchange.history.pg` runs psycopg in trio worker threads, each call bounded in time
  (a dedicated connection for the writer, a pool for readers).
- :mod:`exchange.history.statements` names every SQL statement the programs run.
- :mod:`exchange.history.queries` holds :class:`~exchange.history.queries.HistoryQueries`, the
  reads the API serves and the WebSocket server seeds its statistics from.

Why a package of its own: the api and ws programs read the history and the db program
(:mod:`exchange.db`: migrations, the events writer) writes it. Each program's package is its
own; what several use is a library they all import. So the reads live here, and the ws program
reaches PostgreSQL without importing a line of the writer. The statements stay in one module
for reads and writes alike (STYLE rule 10: every query named in one place), so a schema change
is still checked against one file: the writer imports its statements from this library, never
the other way round.
"""
