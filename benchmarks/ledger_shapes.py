"""Server CPU per trade of candidate ledger storage shapes, at bench-db's scale (issue 20).

bench-db shows PostgreSQL's one backend bounding the writer, and the ledger adding ~24 µs of its
CPU per trade; this measures, in a private PostgreSQL, only the ledger rows' COPY (binary, 355
trades per transaction, 1,000 users) into each shape, so a redesign is chosen on figures:

    .venv/bin/python benchmarks/ledger_shapes.py [TRADES] [VARIANT...]   # default 200000, all

Shared machines are noisy: name the variants to compare and repeat them (``"0008 as built"
"0007 as built" "0008 as built" ...``) so they alternate in one run.
"""

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from exchange.dev.localservers import PostgresServer

N_TRADES = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
BATCH = 355
USERS = [str(i) for i in range(1, 1001)]
MARKETS = [("BTC", "INR"), ("ETH", "INR"), ("SOL", "INR"), ("DOGE", "INR")]
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / TICK


rnd = random.Random(1)
trades = []
for t in range(N_TRADES):
    b, s = rnd.sample(USERS, 2)
    base, quote = rnd.choice(MARKETS)
    trades.append(
        (
            t + 1,
            t + 1,
            b,
            s,
            base,
            quote,
            rnd.randrange(1, 10**8),
            rnd.randrange(1, 10**10),
            1_700_000_000_000 + t,
        )
    )


def v_movements(tr):
    seq, tid, b, s, base, quote, bu, qu, ts = tr
    return [
        (seq, 0, b, quote, "trade", -qu, 10**12, tid, ts),
        (seq, 1, s, quote, "trade", qu, 10**12, tid, ts),
        (seq, 2, s, base, "trade", -bu, 10**12, tid, ts),
        (seq, 3, b, base, "trade", bu, 10**12, tid, ts),
    ]


MOV_TYPES = ["int8", "int4", "text", "text", "text", "int8", "int8", "int8", "int8"]
MOV_COLS = "seq, idx, user_id, asset, kind, amount, balance, ref, ts_ms"
MOV_TABLE = """CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY{cache}, seq bigint NOT NULL, idx integer NOT NULL,
 user_id text NOT NULL, asset text NOT NULL, kind text NOT NULL CHECK (kind IN ('deposit','withdrawal','trade','fee')),
 amount bigint NOT NULL, balance bigint NOT NULL, ref bigint NOT NULL, ts_ms bigint NOT NULL{pk})"""


def v_party(tr):
    seq, tid, b, s, base, quote, bu, qu, ts = tr
    return [
        (seq, b, tid, base, quote, bu, -qu, 0, 10**12, 10**12, ts),
        (seq, s, tid, base, quote, -bu, qu, 0, 10**12, 10**12, ts),
    ]


PARTY_TYPES = [
    "int8",
    "text",
    "int8",
    "text",
    "text",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
]
PARTY_COLS = "seq, user_id, ref, base, quote, base_amount, quote_amount, fee, base_balance, quote_balance, ts_ms"
PARTY_TABLE = """CREATE TABLE ledger (seq bigint NOT NULL, user_id text NOT NULL, ref bigint NOT NULL, base text NOT NULL, quote text NOT NULL,
 base_amount bigint NOT NULL, quote_amount bigint NOT NULL, fee bigint NOT NULL, base_balance bigint NOT NULL, quote_balance bigint NOT NULL, ts_ms bigint NOT NULL)"""


def v_trade(tr):
    seq, tid, b, s, base, quote, bu, qu, ts = tr
    return [(seq, tid, b, s, base, quote, bu, qu, 0, 0, 10**12, 10**12, 10**12, 10**12, ts)]


TRADE_TYPES = ["int8", "int8", "text", "text", "text", "text"] + ["int8"] * 9
TRADE_COLS = "seq, ref, buyer_id, seller_id, base, quote, base_units, quote_units, buyer_fee, seller_fee, buyer_base, buyer_quote, seller_base, seller_quote, ts_ms"
TRADE_TABLE = """CREATE TABLE ledger (seq bigint NOT NULL, ref bigint NOT NULL, buyer_id text NOT NULL, seller_id text NOT NULL, base text NOT NULL, quote text NOT NULL,
 base_units bigint NOT NULL, quote_units bigint NOT NULL, buyer_fee bigint NOT NULL, seller_fee bigint NOT NULL,
 buyer_base bigint NOT NULL, buyer_quote bigint NOT NULL, seller_base bigint NOT NULL, seller_quote bigint NOT NULL, ts_ms bigint NOT NULL)"""


def v_0007(tr):
    seq, tid, b, s, base, quote, bu, qu, ts = tr
    return [
        (seq, 0, b, tid, base, quote, -qu, 0, bu, 0, 10**12, 10**12, ts),
        (seq, 4, s, tid, base, quote, qu, 0, -bu, 0, 10**12, 10**12, ts),
    ]


T7_TYPES = ["int8", "int4", "text", "int8", "text", "text"] + ["int8"] * 7
T7_COLS = (
    "seq, idx, user_id, trade_id, base, quote, quote_amount, quote_fee, base_amount, base_fee,"
    " quote_balance, base_balance, ts_ms"
)
T7_TABLE = """CREATE TABLE ledger ({id}seq bigint NOT NULL, idx integer NOT NULL, user_id text NOT NULL,
 trade_id bigint NOT NULL, base text NOT NULL, quote text NOT NULL, quote_amount bigint NOT NULL,
 quote_fee bigint NOT NULL, base_amount bigint NOT NULL, base_fee bigint NOT NULL,
 quote_balance bigint NOT NULL, base_balance bigint NOT NULL, ts_ms bigint NOT NULL{pk})"""
T7_ID = "id bigint NOT NULL DEFAULT nextval('ids'), "


def v_0008(tr):
    seq, tid, b, s, base, quote, bu, qu, ts = tr
    return [(seq, 0, tid, base, quote, b, s, qu, bu, 0, 0, 10**12, 10**12, 10**12, 10**12, None,
             None, None, ts)]  # fmt: skip


T8_TYPES = ["int8", "int4", "int8", "text", "text", "text", "text"] + ["int8"] * 8 + [
    "text", "int8", "int8", "int8"]  # fmt: skip
T8_COLS = (
    "seq, idx, trade_id, base, quote, buyer_id, seller_id, quote_units, base_units, buyer_fee,"
    " seller_fee, buyer_quote_balance, buyer_base_balance, seller_quote_balance,"
    " seller_base_balance, fee_account, fees_quote_balance, fees_base_balance, ts_ms"
)
# sql/migrations/0008_ledger_fills.sql
T8_TABLE = """CREATE TABLE ledger (id bigint NOT NULL DEFAULT nextval('ids'), seq bigint NOT NULL,
 idx integer NOT NULL, trade_id bigint NOT NULL, base text NOT NULL, quote text NOT NULL,
 buyer_id text NOT NULL, seller_id text NOT NULL, quote_units bigint NOT NULL,
 base_units bigint NOT NULL, buyer_fee bigint NOT NULL, seller_fee bigint NOT NULL,
 buyer_quote_balance bigint NOT NULL, buyer_base_balance bigint NOT NULL,
 seller_quote_balance bigint NOT NULL, seller_base_balance bigint NOT NULL, fee_account text,
 fees_quote_balance bigint, fees_base_balance bigint, ts_ms bigint NOT NULL,
 PRIMARY KEY (seq, idx), CHECK ((fee_account IS NULL) = (buyer_fee = 0 AND seller_fee = 0)))"""
T8_INDEXES = [
    "CREATE INDEX ON ledger (buyer_id, seq DESC, idx DESC)",
    "CREATE INDEX ON ledger (seller_id, seq DESC, idx DESC)",
    "CREATE INDEX ON ledger (fee_account, seq DESC, idx DESC) WHERE fee_account IS NOT NULL",
]


def t7(id_="", pk="", indexes=()):
    return (T7_TABLE.format(id=id_, pk=pk), list(indexes), v_0007, T7_COLS, T7_TYPES)


VARIANTS = {
    "0008 as built": (T8_TABLE, T8_INDEXES, v_0008, T8_COLS, T8_TYPES),
    "0007 as built": t7(
        T7_ID, ", PRIMARY KEY (seq, idx)", ["CREATE INDEX ON ledger (user_id, seq DESC, idx DESC)"]
    ),
    "0007 no id": t7(
        "", ", PRIMARY KEY (seq, idx)", ["CREATE INDEX ON ledger (user_id, seq DESC, idx DESC)"]
    ),
    "0007 unique user index only": t7(
        T7_ID, "", ["CREATE UNIQUE INDEX ON ledger (user_id, seq DESC, idx DESC)"]
    ),
    "0007 unique user index, no id": t7(
        "", "", ["CREATE UNIQUE INDEX ON ledger (user_id, seq DESC, idx DESC)"]
    ),
    "0007 heap only": t7(T7_ID),
    "V0 current": (
        MOV_TABLE.format(cache="", pk=", PRIMARY KEY (seq, idx)"),
        ["CREATE INDEX ON ledger (user_id, asset, seq DESC, idx DESC)"],
        v_movements,
        MOV_COLS,
        MOV_TYPES,
    ),
    "V2 one unique, cache": (
        MOV_TABLE.format(cache=" (CACHE 1000)", pk=""),
        ["CREATE UNIQUE INDEX ON ledger (user_id, asset, seq DESC, idx DESC)"],
        v_movements,
        MOV_COLS,
        MOV_TYPES,
    ),
    "V2b user,seq unique": (
        MOV_TABLE.format(cache=" (CACHE 1000)", pk=""),
        ["CREATE UNIQUE INDEX ON ledger (user_id, seq DESC, idx DESC)"],
        v_movements,
        MOV_COLS,
        MOV_TYPES,
    ),
    "P party unique(user,seq,ref)": (
        PARTY_TABLE,
        ["CREATE UNIQUE INDEX ON ledger (user_id, seq DESC, ref DESC)"],
        v_party,
        PARTY_COLS,
        PARTY_TYPES,
    ),
    "T trade, buyer+seller idx": (
        TRADE_TABLE,
        [
            "CREATE UNIQUE INDEX ON ledger (buyer_id, seq DESC, ref DESC)",
            "CREATE INDEX ON ledger (seller_id, seq DESC, ref DESC)",
        ],
        v_trade,
        TRADE_COLS,
        TRADE_TYPES,
    ),
    "heap only (movements)": (
        MOV_TABLE.format(cache=" (CACHE 1000)", pk=""),
        [],
        v_movements,
        MOV_COLS,
        MOV_TYPES,
    ),
}

if len(sys.argv) > 2:
    VARIANTS = {f"{name} #{i}": VARIANTS[name] for i, name in enumerate(sys.argv[2:])}

with tempfile.TemporaryDirectory() as d:
    server = PostgresServer.start(Path(d) / "pg")
    try:
        url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        for name, (table, indexes, rows_of, cols, types) in VARIANTS.items():
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS ledger")
                conn.execute("DROP SEQUENCE IF EXISTS ids")
                conn.execute("CREATE SEQUENCE ids INCREMENT BY 4")
                conn.execute(table)
                for ix in indexes:
                    conn.execute(ix)
                conn.execute("CHECKPOINT")
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                conn.autocommit = False
                c0, w0 = cpu(pid), time.perf_counter()
                client = 0.0
                for i in range(0, N_TRADES, BATCH):
                    rows = [r for tr in trades[i : i + BATCH] for r in rows_of(tr)]
                    p0 = time.process_time()
                    with (
                        conn.cursor() as cur,
                        cur.copy(f"COPY ledger ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
                    ):
                        copy.set_types(types)
                        for r in rows:
                            copy.write_row(r)
                    client += time.process_time() - p0
                    conn.commit()
                c1, w1 = cpu(pid), time.perf_counter()
                print(
                    f"{name:32s} server {1e6 * (c1 - c0) / N_TRADES:6.2f} µs/trade  wall {1e6 * (w1 - w0) / N_TRADES:6.2f}  client {1e6 * client / N_TRADES:5.2f}",
                    flush=True,
                )
    finally:
        server.stop()
