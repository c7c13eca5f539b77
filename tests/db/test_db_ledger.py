"""The writer's ledger rows: each movement once, with the balance after it, whatever is redelivered."""

from __future__ import annotations

import shutil
import tomllib
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from db_events import make_events

from exchange.db.copy_batch import copy_rows, prepare_connection
from exchange.db.migrate import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from exchange.db.migrate import migrate
from exchange.db.rows import EntryRows, decode_entry, merge
from exchange.markets import MarketConfig, parse_config
from exchange.models import FEE_ACCOUNT
from exchange.names import EVENTS_FIELD


@pytest.fixture(scope="module")
def fee_config() -> MarketConfig:
    """The packaged markets, every one charging 10 bps to makers and 25 to takers."""
    markets = tomllib.loads(resources.files("exchange").joinpath("markets.toml").read_text())
    for market in markets["markets"]:
        market.update(maker_fee_bps=10, taker_fee_bps=25)
    return parse_config(markets)


def _ledger(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT seq, idx, user_id, asset, kind, amount, balance, ref FROM ledger ORDER BY seq, idx"
    ).fetchall()


def _movements(rows: EntryRows) -> list[tuple]:
    """The movements of ``rows`` as the view ``ledger`` shows them, restated from the
    migrations' words: a fill row's buyer at its idx and the three places after it, its seller
    at the next four, the fee account at the four after; each party's quote leg, quote fee,
    base leg and base fee in that order, zero amounts left out, a leg's balance before its
    fee."""
    moves = [tuple(row[:8]) for row in rows.movements]
    for (
        seq, idx, trade, base, quote, buyer, seller, quote_units, base_units, buyer_fee,
        seller_fee, buyer_quote, buyer_base, seller_quote, seller_base, fees, fees_quote,
        fees_base, _,
    ) in rows.fills:  # fmt: skip
        for place, user, asset, kind, amount, balance in (
            (0, buyer, quote, "trade", -quote_units, buyer_quote),
            (2, buyer, base, "trade", base_units, buyer_base + buyer_fee),
            (3, buyer, base, "fee", -buyer_fee, buyer_base),
            (4, seller, quote, "trade", quote_units, seller_quote + seller_fee),
            (5, seller, quote, "fee", -seller_fee, seller_quote),
            (6, seller, base, "trade", -base_units, seller_base),
            (9, fees, quote, "fee", seller_fee, fees_quote),
            (11, fees, base, "fee", buyer_fee, fees_base),
        ):
            if amount:
                moves.append((seq, idx + place, user, asset, kind, amount, balance, trade))
    return sorted(moves)


def test_each_balance_is_the_sum_of_its_movements(fee_config: MarketConfig) -> None:
    """Pure: walking each command's movements back from its final balances, fees included."""
    events = make_events(fee_config, seed=11, commands=800, batch_commands=40, users=8)
    rows = _movements(merge(decode_entry({EVENTS_FIELD: e}, fee_config) for e in events.entries))
    running: dict[tuple[str, str], int] = {}
    for _seq, _idx, user, asset, kind, amount, balance, _ref in rows:
        running[(user, asset)] = running.get((user, asset), 0) + amount
        assert balance == running[(user, asset)], (user, asset, kind)
    assert any(user == FEE_ACCOUNT for _, _, user, *_ in rows)
    assert {key: total for key, total in running.items() if total} == events.ledger_totals()
    assert len({(seq, idx) for seq, idx, *_ in rows}) == len(rows)


def test_a_redelivered_batch_inserts_only_what_is_missing(
    fee_config: MarketConfig, migrated_url: str
) -> None:
    events = make_events(fee_config, seed=12, commands=300, batch_commands=30, users=6)
    entries = [decode_entry({EVENTS_FIELD: e}, fee_config) for e in events.entries]
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
    assert every == _movements(merge(entries))
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


def test_movements_written_before_the_fill_rows_keep_their_ids(
    database_url: str, tmp_path: Path
) -> None:
    """0007 renames 0006's table and 0008 adds one beside 0007's: neither rewrites a row, so
    the movements written before each read the same through the view, with their ids, and
    every later movement gets an id of its own."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        if migration.name < "0007":
            shutil.copy(migration, directory)
    migrate(database_url, directory)
    legacy = [
        (5, 0, "u1", "INR", "deposit", 900, 900, 5, 1_700_000_000_000),
        (6, 0, "u1", "INR", "trade", -300, 600, 1, 1_700_000_000_001),
        (6, 1, "u2", "INR", "trade", 300, 300, 1, 1_700_000_000_001),
    ]
    party = (7, 0, "u1", 2, "TATA", "INR", -100, 0, 500, 0, 500, 500, 1_700_000_000_002)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for row in legacy:
            conn.execute(
                "INSERT INTO ledger (seq, idx, user_id, asset, kind, amount, balance, ref, ts_ms)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                row,
            )
        shutil.copy(next(MIGRATIONS.glob("0007_*.sql")), directory)
        migrate(database_url, directory)
        conn.execute(
            "INSERT INTO ledger_trades (seq, idx, user_id, trade_id, base, quote, quote_amount,"
            " quote_fee, base_amount, base_fee, quote_balance, base_balance, ts_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            party,
        )
        before = conn.execute("SELECT id, seq, idx FROM ledger ORDER BY seq, idx").fetchall()
    migrate(database_url, MIGRATIONS)
    fill = [9, 0, 3, "TATA", "INR", "u2", "u1", 40, 100, 1, 0, 260, 99, 440, 300, "fees", 0, 1,
            1_700_000_000_004]  # fmt: skip
    deposit = [8, 0, "u2", "TATA", "deposit", 7, 7, 8, 1_700_000_000_003]
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare_connection(conn)
        copy_rows(conn, EntryRows([], [], [deposit], [fill]))
        rows = conn.execute(
            "SELECT id, seq, idx, user_id, asset, kind, amount, balance FROM ledger ORDER BY seq, idx"
        ).fetchall()
    assert [row[:3] for row in rows[:5]] == before
    assert [row[1:] for row in rows[5:]] == [
        (8, 0, "u2", "TATA", "deposit", 7, 7),
        (9, 0, "u2", "INR", "trade", -40, 260),
        (9, 2, "u2", "TATA", "trade", 100, 100),
        (9, 3, "u2", "TATA", "fee", -1, 99),
        (9, 4, "u1", "INR", "trade", 40, 440),
        (9, 6, "u1", "TATA", "trade", -100, 300),
        (9, 11, "fees", "TATA", "fee", 1, 1),
    ]
    ids = [row[0] for row in rows]
    assert len(set(ids)) == len(ids) and min(ids[5:]) > max(ids[:5])
