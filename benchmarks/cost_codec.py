"""CPU cost per message of the codec on a seeded flow (commands, replies, events, query replies).

Usage: ``python benchmarks/cost_codec.py [--dump FILE | --check FILE]``. ``--dump`` writes every
encoding; ``--check`` (run on another version of the codec) asserts the same bytes and a clean
round trip. Times are ``time.process_time`` (CPU, robust on a busy machine), best of 5.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from exchange import codec
from exchange.dev.flow import START_TS_MS, Flow
from exchange.engine.core import Engine
from exchange.markets import load_config
from exchange.models import GetBalances, GetDepth, GetOpenOrders


def flow_records(commands: int) -> list:
    config = load_config()
    markets = sorted(config.markets)[:3]
    flow = Flow(config, seed=7, users=200, markets=markets)
    engine = Engine(config)
    records: list = []
    for seq, command in enumerate(flow.funding + flow.commands(commands), start=1):
        outcome = engine.apply(command, seq=seq, ts=START_TS_MS + seq)
        records += [command, outcome.reply, *outcome.events]
    for query in (GetDepth(markets[0]), GetBalances("user1"), GetOpenOrders("user1")):
        records.append(engine.query(query))
    return records


def best_cpu_s(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--dump", metavar="FILE")
    parser.add_argument("--check", metavar="FILE")
    args = parser.parse_args()
    records = flow_records(args.commands)
    encoded = [codec.encode(record) for record in records]
    if args.dump:
        with open(args.dump, "wb") as out:
            out.write(b"\n".join(encoded))
    if args.check:
        with open(args.check, "rb") as old:
            assert old.read().split(b"\n") == encoded, "the encodings differ"
        assert [codec.decode(raw) for raw in encoded] == records, "the round trip differs"
        print(f"identical bytes and round trip on {len(encoded):,} messages")
    n = len(records)
    encode_s = best_cpu_s(lambda: [codec.encode(record) for record in records])
    decode_s = best_cpu_s(lambda: [codec.decode(raw) for raw in encoded])
    print(f"{n:,} messages: encode {encode_s / n * 1e6:.2f} µs, decode {decode_s / n * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
