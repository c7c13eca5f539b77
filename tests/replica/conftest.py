"""A PostgreSQL primary and its streaming replica (``pg_basebackup -R``), private to the module.

The session's shared servers cannot serve: a replica copies a whole cluster, and pausing its
replay must not disturb other tests. Both storage modes, like every PostgreSQL test.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import psycopg
import pytest

from exchange.dev.localservers import PostgresServer, timescaledb_installed
from tests.conftest import STORAGE_MODES


@attrs.frozen
class Pair:
    primary: PostgresServer
    replica: PostgresServer
    primary_url: str
    replica_url: str

    def replica_sql(self, statement: str) -> None:
        with psycopg.connect(self.replica_url, autocommit=True) as conn:
            conn.execute(statement)


@pytest.fixture(scope="module", params=STORAGE_MODES)
def pg_pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    timescaledb = request.param == "timescaledb"
    if timescaledb and not timescaledb_installed():
        pytest.skip("TimescaleDB is not installed into this PostgreSQL")
    root = tmp_path_factory.mktemp(f"replication-{request.param}")
    with PostgresServer.start(root / "primary", fsync=False, timescaledb=timescaledb) as primary:
        primary_url = primary.create_database("exchange")
        with PostgresServer.start_replica(primary, root / "replica") as replica:
            yield Pair(primary, replica, primary_url, replica.database_url("exchange"))
