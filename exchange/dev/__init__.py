"""Developer tools: what `just up`, the tests and the benchmarks use, never the programs.

``devstack`` (`just up`), ``localservers`` (throwaway Redis and PostgreSQL) and
``serverbinaries`` (where their binaries come from), ``webassets`` (vendors the trading page's
chart library), ``flow`` (the seeded order flow the engine tests and benchmarks share). They may
import the exchange's packages; no program imports them (``bin/*`` runs without this package).
"""
