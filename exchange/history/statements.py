"""Every SQL statement the programs run, by name (the schema itself is in ``sql/migrations``).

Nothing else in the project writes SQL: the migrator, the writer and the history queries import
their statements from here, so a schema change is checked against one file. Statements take
psycopg's named placeholders (``%(name)s``); klines statements are built once per candle table
and direction, since identifiers and sort orders cannot be parameters.
"""

from __future__ import annotations

import attrs

# --- migrator ------------------------------------------------------------------------------------

# Any constant works; it only has to be the same for every migrator of every database.
MIGRATION_LOCK_KEY = 7_400_311_001

LOCK_MIGRATIONS = "SELECT pg_advisory_lock(%(key)s)"
UNLOCK_MIGRATIONS = "SELECT pg_advisory_unlock(%(key)s)"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

APPLIED_MIGRATIONS = "SELECT name, sha256 FROM schema_migrations ORDER BY name"

RECORD_MIGRATION = "INSERT INTO schema_migrations (name, sha256) VALUES (%(name)s, %(sha256)s)"

TIMESCALE_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"

# --- archival (TimescaleDB) -------------------------------------------------------------------

# The compression, retention and refresh policies (sql/migrations/0004_*); NULL turns one off.
CONFIGURE_ARCHIVAL = """
SELECT configure_history_archival(%(compress_after)s::interval, %(retain_for)s::interval)
"""

# --- writer --------------------------------------------------------------------------------------

# Per-connection staging tables: the writer COPYs a batch in, then upserts from them in one
# statement each. ON COMMIT DELETE ROWS empties them at every commit (and a rollback discards
# them), so a retried batch never sees leftovers.
CREATE_STAGING = [
    """
    CREATE TEMP TABLE IF NOT EXISTS trades_staging (
        id bigint, ts_ms bigint, market text, price numeric, quantity numeric,
        quote_quantity numeric, is_buyer_maker boolean, buy_order_id bigint,
        sell_order_id bigint, buyer_id text, seller_id text, seq bigint
    ) ON COMMIT DELETE ROWS
    """,
    """
    CREATE TEMP TABLE IF NOT EXISTS orders_staging (
        order_id bigint, client_order_id text, market text, side text, type text,
        price numeric, quantity numeric, quote_quantity numeric, executed_quantity numeric,
        executed_quote_quantity numeric, status text, time_in_force text, post_only boolean,
        self_trade_prevention text, created_ms bigint, updated_ms bigint, user_id text,
        seq bigint, trigger_price numeric, triggered_ms bigint
    ) ON COMMIT DELETE ROWS
    """,
    """
    CREATE TEMP TABLE IF NOT EXISTS ledger_movements_staging (
        seq bigint, idx integer, user_id text, asset text, kind text, amount bigint,
        balance bigint, ref bigint, ts_ms bigint
    ) ON COMMIT DELETE ROWS
    """,
    """
    CREATE TEMP TABLE IF NOT EXISTS ledger_fills_staging (
        seq bigint, idx integer, trade_id bigint, base text, quote text, buyer_id text,
        seller_id text, quote_units bigint, base_units bigint, buyer_fee bigint,
        seller_fee bigint, buyer_quote_balance bigint, buyer_base_balance bigint,
        seller_quote_balance bigint, seller_base_balance bigint, fee_account text,
        fees_quote_balance bigint, fees_base_balance bigint, ts_ms bigint
    ) ON COMMIT DELETE ROWS
    """,
]

COPY_TRADES = "COPY trades_staging FROM STDIN"
COPY_ORDERS = "COPY orders_staging FROM STDIN"


@attrs.frozen
class LedgerTable:
    """How the writer COPYs rows into one of the ledger's tables: straight in (the common
    case), or, when the key (seq, idx) refuses a redelivered batch, through the staging table,
    inserting only what is missing. A row is keyed by its command and its place among that
    command's movements, both the same on replay (sql/migrations/0006_ledger.sql, 0008).
    Binary COPY: the rows are all integers but for a few short texts, and psycopg dumps
    integers to binary in about half the client CPU of rendering them as text
    (benchmarks/micro_ledger.py); ``types`` are the columns' types, in order, for
    Copy.set_types."""

    table: str
    columns: str
    types: list[str]

    @property
    def copy(self) -> str:
        return f"COPY {self.table} ({self.columns}) FROM STDIN (FORMAT BINARY)"

    @property
    def copy_staging(self) -> str:
        return f"COPY {self.table}_staging ({self.columns}) FROM STDIN (FORMAT BINARY)"

    @property
    def insert_missing(self) -> str:
        return f"""
INSERT INTO {self.table} ({self.columns})
SELECT {self.columns}
FROM {self.table}_staging
ORDER BY seq, idx
ON CONFLICT (seq, idx) DO NOTHING
"""


LEDGER_MOVEMENTS = LedgerTable(
    "ledger_movements",
    "seq, idx, user_id, asset, kind, amount, balance, ref, ts_ms",
    ["int8", "int4", "text", "text", "text", "int8", "int8", "int8", "int8"],
)
LEDGER_FILLS = LedgerTable(
    "ledger_fills",
    "seq, idx, trade_id, base, quote, buyer_id, seller_id, quote_units, base_units, buyer_fee,"
    " seller_fee, buyer_quote_balance, buyer_base_balance, seller_quote_balance,"
    " seller_base_balance, fee_account, fees_quote_balance, fees_base_balance, ts_ms",
    ["int8", "int4", "int8", "text", "text", "text", "text"]
    + ["int8"] * 8
    + ["text", "int8", "int8", "int8"],
)

# Milliseconds become timestamptz by integer interval arithmetic (exact), not to_timestamp()'s
# double precision.
INSERT_TRADES = """
INSERT INTO trades (id, time, market, price, quantity, quote_quantity, is_buyer_maker,
                    buy_order_id, sell_order_id, buyer_id, seller_id, seq)
SELECT id, TIMESTAMPTZ 'epoch' + ts_ms * INTERVAL '1 millisecond', market, price, quantity,
       quote_quantity, is_buyer_maker, buy_order_id, sell_order_id, buyer_id, seller_id, seq
FROM trades_staging
ORDER BY id
ON CONFLICT (id, time) DO NOTHING
"""

# After a batch commits: refresh the continuous aggregates' buckets of trades written behind
# their horizon (TimescaleDB); nothing to do on plain PostgreSQL, whose trigger kept the
# candles. See sql/migrations/0004_*.
SETTLE_CANDLES = """
CALL settle_candles(TIMESTAMPTZ 'epoch' + %(oldest_ms)s::bigint * INTERVAL '1 millisecond',
                    TIMESTAMPTZ 'epoch' + %(newest_ms)s::bigint * INTERVAL '1 millisecond')
"""

# A state replaces the stored one only if it is newer: a later command (seq), or the same command
# further along. Redelivered or replayed events compare equal and change nothing.
UPSERT_ORDERS = """
INSERT INTO orders AS o (order_id, created_at, user_id, client_order_id, market, side, type,
                         price, quantity, quote_quantity, executed_quantity,
                         executed_quote_quantity, status, time_in_force, post_only,
                         self_trade_prevention, updated_at, closed_at, seq, trigger_price,
                         triggered_at)
SELECT order_id, TIMESTAMPTZ 'epoch' + created_ms * INTERVAL '1 millisecond', user_id,
       client_order_id, market, side, type, price, quantity, quote_quantity, executed_quantity,
       executed_quote_quantity, status, time_in_force, post_only, self_trade_prevention,
       TIMESTAMPTZ 'epoch' + updated_ms * INTERVAL '1 millisecond',
       CASE WHEN status IN ('filled', 'cancelled', 'expired', 'rejected')
            THEN TIMESTAMPTZ 'epoch' + updated_ms * INTERVAL '1 millisecond' END,
       seq, trigger_price, TIMESTAMPTZ 'epoch' + triggered_ms * INTERVAL '1 millisecond'
FROM orders_staging
ORDER BY order_id
ON CONFLICT (order_id, created_at) DO UPDATE SET
    executed_quantity = excluded.executed_quantity,
    executed_quote_quantity = excluded.executed_quote_quantity,
    status = excluded.status,
    updated_at = excluded.updated_at,
    closed_at = excluded.closed_at,
    seq = excluded.seq,
    triggered_at = excluded.triggered_at
WHERE (o.seq, o.updated_at, o.executed_quantity)
    < (excluded.seq, excluded.updated_at, excluded.executed_quantity)
"""

# --- history queries -----------------------------------------------------------------------------

PING = "SELECT 1"

RECENT_TRADES = """
SELECT id, market, price, quantity, quote_quantity, is_buyer_maker, time
FROM trades
WHERE market = %(market)s
ORDER BY time DESC, id DESC
LIMIT %(limit)s
"""

# Klines roll candles of one table up into buckets of %(width)s. The inner scan reads at most
# %(rows)s candles, in the direction of the wanted buckets: a bucket holds at most width/source
# candles, so limit * width/source candles contain the first `limit` buckets whole (see
# exchange.history.queries). Bounds are NULL when absent.
_KLINES = """
SELECT time_bucket(%(width)s, bucket) AS start,
       (array_agg(open ORDER BY first_id))[1] AS open,
       max(high) AS high,
       min(low) AS low,
       (array_agg(close ORDER BY last_id DESC))[1] AS close,
       sum(volume) AS volume,
       sum(quote_volume) AS quote_volume,
       sum(trade_count) AS trades
FROM (
    SELECT bucket, open, high, low, close, volume, quote_volume, trade_count, first_id, last_id
    FROM {table}
    WHERE market = %(market)s
      AND bucket >= coalesce(time_bucket(%(width)s, %(start)s::timestamptz), '-infinity')
      AND bucket < coalesce(time_bucket(%(width)s, %(end)s::timestamptz) + %(width)s, 'infinity')
    ORDER BY bucket {direction}
    LIMIT %(rows)s
) AS candles
GROUP BY 1
ORDER BY 1 {direction}
LIMIT %(limit)s
"""

# Klines as wide as the candles (1m, 1h, 1d) are the candles themselves: no roll-up, and the
# scan stops after %(limit)s (on a plain table in index order; a continuous aggregate sorts
# the candles of the narrowed range, see exchange.history.queries).
_CANDLES = """
SELECT bucket AS start, open, high, low, close, volume, quote_volume, trade_count AS trades
FROM {table}
WHERE market = %(market)s
  AND bucket >= coalesce(time_bucket(%(width)s, %(start)s::timestamptz), '-infinity')
  AND bucket < coalesce(time_bucket(%(width)s, %(end)s::timestamptz) + %(width)s, 'infinity')
ORDER BY bucket {direction}
LIMIT %(limit)s
"""

CANDLE_TABLES = ("candles_1m", "candles_1h", "candles_1d")


def _per_table_and_direction(template: str) -> dict[tuple[str, str], str]:
    return {
        (table, direction): template.format(table=table, direction=direction)
        for table in CANDLE_TABLES
        for direction in ("ASC", "DESC")
    }


KLINES = _per_table_and_direction(_KLINES)
CANDLES = _per_table_and_direction(_CANDLES)

# Trades summed into one candle-shaped piece by the candles' rules (0003_candles.sql): open and
# close are the first and last trade by id, and carry their ids so pieces combine.
_TRADES_AS_CANDLE = """
       (array_agg(price ORDER BY id))[1] AS open,
       max(price) AS high,
       min(price) AS low,
       (array_agg(price ORDER BY id DESC))[1] AS close,
       sum(quantity) AS volume,
       sum(quote_quantity) AS quote_volume,
       count(*) AS trades,
       min(id) AS first_id,
       max(id) AS last_id
"""
_CANDLE_COLUMNS = (
    "open, high, low, close, volume, quote_volume, trade_count AS trades, first_id, last_id"
)

# The 24-hour window (since, until] as candle-shaped pieces per market, cut as
# exchange.marketstats.StoredWindow says: the raw trades of the partial minutes at both edges
# (under a minute each) summed into one piece, the stored 1-minute candles of the partial hours,
# the 1-hour candles between. No statistic here: marketstats folds the pieces into the ticker.
TICKER_PIECES = f"""
SELECT market, {_TRADES_AS_CANDLE}
FROM (
    SELECT market, id, price, quantity, quote_quantity
    FROM trades
    WHERE market = ANY(%(markets)s) AND time > %(since)s AND time < %(first_minute)s
    UNION ALL
    SELECT market, id, price, quantity, quote_quantity
    FROM trades
    WHERE market = ANY(%(markets)s) AND time >= %(last_minute)s AND time <= %(until)s
) AS edges
GROUP BY market
UNION ALL
SELECT market, {_CANDLE_COLUMNS}
FROM candles_1m
WHERE market = ANY(%(markets)s)
  AND (bucket >= %(first_minute)s AND bucket < %(first_hour)s
       OR bucket >= %(last_hour)s AND bucket < %(last_minute)s)
UNION ALL
SELECT market, {_CANDLE_COLUMNS}
FROM candles_1h
WHERE market = ANY(%(markets)s) AND bucket >= %(first_hour)s AND bucket < %(last_hour)s
"""

# --- ws statistics seed ---------------------------------------------------------------------------

# The WebSocket server seeds its statistics in one REPEATABLE READ snapshot, so the per-second
# buckets, the latest klines and the newest trade id all describe the same set of trades.
BEGIN_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# The newest trade of any market (NULL without trades): the seed's watermark.
LAST_TRADE_ID = "SELECT max(id) AS id FROM trades"

# One market's trades since %(since)s, summed per second like the ws TickerWindow's buckets
# (at most 86,400 rows a day); open and close are the first and last trades by id.
TICKER_SECONDS = f"""
SELECT time_bucket(INTERVAL '1 second', time) AS second, {_TRADES_AS_CANDLE}
FROM trades
WHERE market = %(market)s AND time >= %(since)s
GROUP BY 1
ORDER BY 1
"""

_ORDER_COLUMNS = """
order_id, client_order_id, market, side, type, price, quantity, quote_quantity,
executed_quantity, executed_quote_quantity, status, time_in_force, post_only,
self_trade_prevention, created_at, updated_at, trigger_price, triggered_at
"""

# Optional filters get a statement each rather than "(param IS NULL OR ...)", which would
# defeat the index once psycopg prepares the statement with a generic plan.
_ORDER_HISTORY = """
SELECT {columns}
FROM orders
WHERE user_id = %(user_id)s AND closed_at IS NOT NULL{market_filter}
ORDER BY closed_at DESC, order_id DESC
LIMIT %(limit)s
"""
ORDER_HISTORY = _ORDER_HISTORY.format(
    columns=_ORDER_COLUMNS, market_filter=" AND market = %(market)s"
)
ORDER_HISTORY_ALL_MARKETS = _ORDER_HISTORY.format(columns=_ORDER_COLUMNS, market_filter="")

ORDER_BY_ID = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE user_id = %(user_id)s AND order_id = %(order_id)s
ORDER BY created_at DESC
LIMIT 1
"""

# A client id may be reused once the engine has forgotten its first order: the newest wins.
ORDER_BY_CLIENT_ID = f"""
SELECT {_ORDER_COLUMNS}
FROM orders
WHERE user_id = %(user_id)s AND client_order_id = %(client_order_id)s
ORDER BY created_at DESC
LIMIT 1
"""

ORDER_FILLS = """
SELECT id, price, quantity
FROM trades
WHERE buy_order_id = %(order_id)s OR sell_order_id = %(order_id)s
ORDER BY id
"""

# A user's own trades: the buyer's and the seller's index each give their newest rows, merged.
# (Self-trades never happen, so no trade appears on both sides.)
_FILLS = """
SELECT * FROM (
    (SELECT id, buy_order_id AS order_id, market, 'buy' AS side, price, quantity,
            quote_quantity, is_buyer_maker AS is_maker, time
     FROM trades
     WHERE buyer_id = %(user_id)s{market_filter}
     ORDER BY time DESC, id DESC
     LIMIT %(limit)s)
    UNION ALL
    (SELECT id, sell_order_id, market, 'sell', price, quantity, quote_quantity,
            NOT is_buyer_maker, time
     FROM trades
     WHERE seller_id = %(user_id)s{market_filter}
     ORDER BY time DESC, id DESC
     LIMIT %(limit)s)
) AS own
ORDER BY time DESC, id DESC
LIMIT %(limit)s
"""
FILLS = _FILLS.format(market_filter=" AND market = %(market)s")
FILLS_ALL_MARKETS = _FILLS.format(market_filter="")

# --- read replica (exchange.history.replica) -----------------------------------------------------

# Positions in the WAL as byte offsets (bigint), so they compare as integers in Python.
PRIMARY_WAL_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS position"
REPLICA_WAL_POSITION = """
SELECT pg_is_in_recovery() AS standby,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS position
"""

# --- backups (exchange.backup) -------------------------------------------------------------------

# The newest engine sequence whose rows are in the history (trades, order states and ledger
# movements: a deposit is in the ledger only; a ledger trade row is its trade's).
HISTORY_POSITION = """
SELECT greatest((SELECT max(seq) FROM trades), (SELECT max(seq) FROM orders),
                (SELECT max(seq) FROM ledger_movements)) AS seq
"""
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"
BEGIN_EXPORTED_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
END_EXPORTED_SNAPSHOT = "COMMIT"
SERVER_VERSION = "SHOW server_version"
# What makes a database "not empty" for a restore: any relation or extension of its own.
DATABASE_CONTENTS = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relkind IN ('r', 'p', 'v', 'm'))
     + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS objects
"""
TIMESCALE_PRE_RESTORE = "SELECT timescaledb_pre_restore()"
TIMESCALE_POST_RESTORE = "SELECT timescaledb_post_restore()"
# Formatted with psycopg.sql.Literal (DDL takes no parameters): the dump's own version.
CREATE_TIMESCALE_VERSION = "CREATE EXTENSION timescaledb VERSION {version}"
# --- ledger and audit ----------------------------------------------------------------------------

_LEDGER_COLUMNS = "id, asset, kind, amount, balance, ref, ts_ms"
# The same columns of a party's movements (``m``), with their order.
_PARTY_MOVEMENT_COLUMNS = "m.id, m.asset, m.kind, m.amount, m.balance, m.ref, m.ts_ms, m.seq, m.idx"

# Where a user's trade movements are, as party rows of ledger_trades (sql/migrations/0007,
# 0008): that table's own rows, and each role of a ledger_fills row, by the index of its role.
_PARTY_SOURCES = [
    ("ledger_trades", "t", "t", "user_id"),
    ("ledger_fills", "f", "ledger_fill_buyer(f)", "buyer_id"),
    ("ledger_fills", "f", "ledger_fill_seller(f)", "seller_id"),
    ("ledger_fills", "f", "ledger_fill_fees(f)", "fee_account"),
]
# A party with a movement of %(asset)s (a zero amount is no movement).
_PARTY_MOVES_ASSET = """
       AND (((own.p).quote = %(asset)s AND ((own.p).quote_amount, (own.p).quote_fee) <> (0, 0))
            OR ((own.p).base = %(asset)s AND ((own.p).base_amount, (own.p).base_fee) <> (0, 0)))"""


def _user_trade_movements(condition: str) -> str:
    """The movements of the user's newest %(limit)s parties of each source meeting
    ``condition``: each source is read newest first from its user index, never sorted whole."""
    newest = "\n    UNION ALL\n".join(
        f"""    (SELECT own.p
     FROM {table} AS {alias} CROSS JOIN LATERAL (SELECT {party} AS p) AS own
     WHERE {alias}.{user} = %(user_id)s{condition}
     ORDER BY {alias}.seq DESC, {alias}.idx DESC
     LIMIT %(limit)s)"""
        for table, alias, party, user in _PARTY_SOURCES
    )
    return f"""SELECT {_PARTY_MOVEMENT_COLUMNS}
     FROM (
{newest}
     ) AS newest
     CROSS JOIN LATERAL ledger_trade_movements(newest.p) AS m"""


# A user's newest movements of one asset: the newest of each table from its user index,
# merged. A party kept has at least one movement of the asset.
LEDGER = f"""
SELECT {_LEDGER_COLUMNS}
FROM (
    (SELECT {_LEDGER_COLUMNS}, seq, idx
     FROM ledger_movements
     WHERE user_id = %(user_id)s AND asset = %(asset)s
     ORDER BY seq DESC, idx DESC
     LIMIT %(limit)s)
    UNION ALL
    ({_user_trade_movements(_PARTY_MOVES_ASSET)}
     WHERE m.asset = %(asset)s)
) AS movements
ORDER BY seq DESC, idx DESC
LIMIT %(limit)s
"""

# The same over every asset: the movements table's index is by asset, so its newest rows are
# taken per configured asset; every party has a movement.
LEDGER_ALL_ASSETS = f"""
SELECT {_LEDGER_COLUMNS}
FROM (
    (SELECT own.*
     FROM unnest(%(assets)s::text[]) AS a(asset)
     CROSS JOIN LATERAL (
         SELECT {_LEDGER_COLUMNS}, seq, idx
         FROM ledger_movements
         WHERE user_id = %(user_id)s AND asset = a.asset
         ORDER BY seq DESC, idx DESC
         LIMIT %(limit)s
     ) AS own)
    UNION ALL
    ({_user_trade_movements("")})
) AS movements
ORDER BY seq DESC, idx DESC
LIMIT %(limit)s
"""

# The sequence the ledger has reached (0 when empty), through each table's primary key.
LEDGER_SEQ = """
SELECT coalesce(greatest((SELECT max(seq) FROM ledger_movements),
                         (SELECT max(seq) FROM ledger_trades),
                         (SELECT max(seq) FROM ledger_fills)), 0) AS seq
"""

# The history's half of the audit, over the movements of commands up to %(seq)s: what came in
# and went out, what the users hold and what the fee account holds, per asset.
LEDGER_AUDIT = """
SELECT asset,
       coalesce(sum(amount) FILTER (WHERE kind = 'deposit'), 0) AS deposits,
       coalesce(-sum(amount) FILTER (WHERE kind = 'withdrawal'), 0) AS withdrawals,
       coalesce(sum(amount) FILTER (WHERE user_id <> %(fee_account)s), 0) AS users,
       coalesce(sum(amount) FILTER (WHERE user_id = %(fee_account)s), 0) AS fees
FROM ledger
WHERE seq <= %(seq)s
GROUP BY asset
ORDER BY asset
"""
