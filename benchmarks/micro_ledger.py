"""The ledger's cost in the db writer, measured as CPU rather than throughput (robust on a busy
machine): the process time of decoding a seeded backlog with and without the ledger, and the
server time of writing one batch's rows (copy_rows) into a private PostgreSQL with and without
its ledger rows, each the minimum of ``--repeat`` runs.

    .venv/bin/python benchmarks/micro_ledger.py --commands 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "db"))

from db_events import make_events  # noqa: E402

from exchange.db import copy_batch  # noqa: E402
from exchange.db.migrate import migrate  # noqa: E402
from exchange.db.rows import EntryRows, decode_entry, merge  # noqa: E402
from exchange.dev.localservers import PostgresServer  # noqa: E402
from exchange.markets import load_config  # noqa: E402
from exchange.names import EVENTS_FIELD  # noqa: E402
from exchange.programs import tune_gc  # noqa: E402


def decode_cpu(entries: list[bytes], config, repeat: int) -> tuple[float, float]:
    """Least process time (s) of decoding every entry and merging them, without and with the
    ledger (taking turns)."""
    fields = [{EVENTS_FIELD: payload} for payload in entries]
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, ledger in enumerate((False, True)):
            started = time.process_time()
            merge(decode_entry(f, config, ledger=ledger) for f in fields)
            best[i] = min(best[i], time.process_time() - started)
    return best[0], best[1]


def copy_times(url: str, variants: list[EntryRows], repeat: int) -> list[tuple[float, float]]:
    """Per variant, the least wall time and least client process time (s) of one copy_rows
    into emptied tables (wall: the server's work and the client's row formatting); the
    variants take turns, so a busy spell of the machine hits them alike."""
    best = [(float("inf"), float("inf"))] * len(variants)
    with psycopg.connect(url, autocommit=True) as conn:
        copy_batch.prepare_connection(conn)
        for _ in range(repeat):
            for i, rows in enumerate(variants):
                conn.execute("TRUNCATE trades, orders, ledger_movements, ledger_fills")
                conn.execute("CHECKPOINT")
                started, cpu = time.perf_counter(), time.process_time()
                copy_batch.copy_rows(conn, rows)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-db", action="store_true", help="only the decoding CPU")
    args = parser.parse_args()
    config = load_config()
    log = make_events(config, seed=7, commands=args.commands, batch_commands=512)
    tune_gc()  # as the writer runs (bin/db)
    on = merge(decode_entry({EVENTS_FIELD: p}, config) for p in log.entries)
    print(f"{len(log.entries)} entries, {len(on.trades)} trades, {len(on.orders)} orders, "
          f"{len(on.movements)} ledger movement rows, {len(on.fills)} ledger fill rows")  # fmt: skip
    off_s, on_s = decode_cpu(log.entries, config, args.repeat)
    per = 1e6 / max(len(on.trades), 1)
    print(f"decode cpu: off {off_s * 1e3:.1f} ms ({off_s * per:.2f} µs/trade), "
          f"on {on_s * 1e3:.1f} ms ({on_s * per:.2f} µs/trade), +{(on_s / off_s - 1) * 100:.0f}%")  # fmt: skip
    if args.no_db:
        return
    off = EntryRows(on.trades, on.orders)
    with (
        tempfile.TemporaryDirectory() as tmp,
        PostgresServer.start(Path(tmp) / "pg", fsync=False) as server,
    ):
        url = server.create_database("micro")
        migrate(url)
        off_c, on_c = copy_times(url, [off, on], args.repeat)
    for what, a, b in (("wall", off_c[0], on_c[0]), ("client cpu", off_c[1], on_c[1])):
        print(f"copy_rows {what}: off {a * 1e3:.1f} ms ({a * per:.2f} µs/trade), "
              f"on {b * 1e3:.1f} ms ({b * per:.2f} µs/trade), +{(b / a - 1) * 100:.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
