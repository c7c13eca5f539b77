"""Backups of the whole exchange, taken while it runs, and their restore into empty servers.

- :mod:`.manifest`: what a backup holds and how it is verified (pure);
- :mod:`.replay`: the engine core run over a backup's snapshot and log (pure);
- :mod:`.redis_part`, :mod:`.postgres_part`: reading and writing each server;
- :mod:`.take`, :mod:`.restore`: the two operations, in the order that keeps them consistent;
- ``python -m exchange.backup backup|restore DIR`` (``just backup`` / ``just restore``).
"""
