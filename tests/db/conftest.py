"""Fixtures of the db tests: a migrated database, the market configuration, writer settings."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from exchange.db.migrate import migrate
from exchange.markets import MarketConfig, load_config
from exchange.settings import Settings


@pytest.fixture(scope="session")
def config() -> MarketConfig:
    return load_config()


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """A fresh database with every migration applied."""
    migrate(database_url)
    return database_url


@pytest.fixture
def conn(migrated_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the migrated database (for checks and direct writes)."""
    with psycopg.connect(migrated_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def writer_settings(redis_url: str, migrated_url: str) -> Settings:
    """Settings of a writer on the test's Redis and database; claims idle entries at once."""
    return Settings(
        redis_url=redis_url, database_url=migrated_url, db_read_count=8, db_claim_idle_s=0.0
    )
