"""The writer's ledger rows: each movement once, with the balance after it, whatever is redelivered."""

from __future__ import annotations

import psycopg
import pytest
from db_events import make_events

from exchange.db.copy_batch import copy_rows, prepare_connection
from exchange.db.rows import EntryRows, decode_entry, merge
from exchange.markets import MarketConfig
from exchange.names import EVENTS_FIELD


def _ledger(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT seq, idx, user_id, asset, kind, amount, balance, ref FROM ledger ORDER BY seq, idx"
    ).fetchall()


def test_each_balance_is_the_sum_of_its_movements(config: MarketConfig) -> None:
    """Pure: walking each command's movements back from its final balances."""
    events = make_events(config, seed=11, commands=800, batch_commands=40, users=8)
    rows = merge(decode_entry({EVENTS_FIELD: e}, config) for e in events.entries).ledger
    running: dict[tuple[str, str], int] = {}
    for _seq, _idx, user, asset, kind, amount, balance, _ref, _ts in rows:
        running[(user, asset)] = running.get((user, asset), 0) + amount
        assert balance == running[(user, asset)], (user, asset, kind)
    assert {key: total for key, total in running.items() if total} == events.ledger_totals()
    assert len({(seq, idx) for seq, idx, *_ in rows}) == len(rows)


def test_a_redelivered_batch_inserts_only_what_is_missing(
    config: MarketConfig, migrated_url: str
) -> None:
    events = make_events(config, seed=12, commands=300, batch_commands=30, users=6)
    entries = [decode_entry({EVENTS_FIELD: e}, config) for e in events.entries]
    half = len(entries) // 2
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        prepare_connection(conn)
        copy_rows(conn, merge(entries[:half]))
        first = _ledger(conn)
        ids = dict(((s, i), n) for s, i, n in conn.execute("SELECT seq, idx, id FROM ledger"))
        # Redelivered together with entries never written: the refused direct COPY falls back.
        copy_rows(conn, merge(entries))
        copy_rows(conn, merge(entries[half - 1 : half + 1]))
        every = _ledger(conn)
        again = dict(((s, i), n) for s, i, n in conn.execute("SELECT seq, idx, id FROM ledger"))
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == len(events.trades)
    expected = merge(entries).ledger
    assert every == [row[:8] for row in expected]
    assert every[: len(first)] == first
    assert all(again[key] == n for key, n in ids.items())  # rows written once keep their ids


def test_a_ledger_value_of_the_wrong_type_is_refused_as_data(migrated_url: str) -> None:
    """The binary COPY dumps the integers itself: a text or an out-of-range number where one
    goes is a DataError (the consumer dead-letters its entry), as in a text COPY, and the
    transaction writes nothing."""
    good = (7, 0, "u1", "INR", "deposit", 5, 5, 7, 1_700_000_000_000)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        prepare_connection(conn)
        for bad in ((7, 1, "u1", "INR", "deposit", 1, 6, 7, "soon"), (7, 1, "u1", "INR",
                    "deposit", 2**63, 6, 7, 1)):  # fmt: skip
            with pytest.raises(psycopg.DataError):
                copy_rows(conn, EntryRows([], [], [good, bad]))
            assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0
        copy_rows(conn, EntryRows([], [], [good]))
        assert _ledger(conn) == [good[:8]]
