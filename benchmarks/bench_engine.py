"""Benchmark the pure matching engine: apply a seeded synthetic flow one command at a time.

The flow (:mod:`exchange.dev.flow`, the same generator the engine tests use) is generated up
front and not timed: about 55% passive limit orders near the touch, 25% cancels of open orders,
15% crossing limit orders and 5% market orders, over 3 markets and 1,000 users who are first
funded by Deposit commands (applied before the clock starts). ``--stop-share 0.05`` makes 5% of
the commands stop orders instead (the other kinds keep their proportions): triggers a few ticks
either side of the last trade, half market and half limit orders that cross when they trigger. Each command is then applied
through ``Engine.apply`` and timed with ``time.perf_counter_ns``; besides the percentiles it
prints the median by the number of trades a command made (each trade adds its records, the
maker's order view and the settlement, which is what the tail is made of).

The garbage collector is tuned as ``bin/engine`` tunes it (:func:`exchange.programs.tune_gc`):
existing objects, here mostly the pre-generated commands, are frozen and collections are rarer.

Usage: ``python benchmarks/bench_engine.py [--commands N] [--users N] [--seed N]
[--stop-share F]``. The last
line printed is one JSON object. Diagnostics: ``--gc-off`` disables the garbage collector while
timing (to see what its full collections cost), ``--profile FILE`` runs the timed loop under
pyinstrument (``pip install pyinstrument``; timings are then inflated) and writes its report.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from array import array

import attrs

from exchange.dev.flow import START_TS_MS, Flow, Mix, replay
from exchange.engine.core import Engine
from exchange.markets import load_config
from exchange.models import Rejection
from exchange.programs import tune_gc


def percentile_us(sorted_ns: array, fraction: float) -> float:
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return round(sorted_ns[index] / 1000, 2)


def mix_with_stops(share: float) -> Mix:
    """The default mix with ``share`` of all commands made stop orders."""
    mix = Mix()
    others = mix.passive + mix.cancel + mix.crossing + mix.market
    return attrs.evolve(mix, stop=others * share / (1 - share))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stop-share", type=float, default=0.0, help="fraction of commands that are stop orders"
    )
    parser.add_argument("--gc-off", action="store_true", help="no garbage collection while timing")
    parser.add_argument("--profile", metavar="FILE", help="write a pyinstrument report to FILE")
    args = parser.parse_args(argv)

    config = load_config()
    markets = sorted(config.markets)[:3]
    started = time.perf_counter()
    flow = Flow(
        config,
        seed=args.seed,
        users=args.users,
        markets=markets,
        mix=mix_with_stops(args.stop_share),
    )
    commands = flow.commands(args.commands)
    print(
        f"generated {len(commands):,} commands (after {len(flow.funding):,} deposits) over "
        f"{', '.join(markets)} for {args.users:,} users in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    engine = Engine(config)
    replay(engine, flow.funding)
    first_seq = len(flow.funding) + 1
    durations = array("q", bytes(8 * len(commands)))
    trades_made = array("q", bytes(8 * len(commands)))
    rejected = 0
    apply, clock = engine.apply, time.perf_counter_ns
    tune_gc()  # as bin/engine does once it has recovered
    if args.gc_off:
        gc.disable()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    loop_started = clock()
    for i, command in enumerate(commands):
        seq = first_seq + i
        trades_before = engine.next_trade_id
        before = clock()
        outcome = apply(command, seq=seq, ts=START_TS_MS + seq)
        durations[i] = clock() - before
        trades_made[i] = engine.next_trade_id - trades_before
        if type(outcome.reply) is Rejection:
            rejected += 1
    wall_ns = clock() - loop_started
    gc.enable()
    gc.unfreeze()
    if profiler is not None:
        profiler.stop()
        with open(args.profile, "w") as out:
            out.write(profiler.output_text(unicode=True, show_all=False))

    trades = engine.next_trade_id - 1
    assert trades == flow.trades, "the replay differs from the generator's engine"
    ordered = array("q", sorted(durations))
    # What a command costs by the trades it made: the tail is commands sweeping several makers.
    by_trades: dict[int, list[int]] = {}
    for duration, made in zip(durations, trades_made, strict=True):
        by_trades.setdefault(min(made, 6), []).append(duration)
    p50_by_trades = {
        (f"{made}+" if made == 6 else str(made)): percentile_us(array("q", sorted(ds)), 0.5)
        for made, ds in sorted(by_trades.items())
    }
    result = {
        "commands": len(commands),
        "commands_per_s": round(len(commands) / (wall_ns / 1e9)),
        "p50_us": percentile_us(ordered, 0.50),
        "p99_us": percentile_us(ordered, 0.99),
        "p999_us": percentile_us(ordered, 0.999),
        "max_us": round(ordered[-1] / 1000, 2),
        "mean_us": round(sum(ordered) / len(ordered) / 1000, 2),
        "trades": trades,
        "p50_us_by_trades": p50_by_trades,
        "rejected": rejected,
        "stop_share": args.stop_share,
        "stops_triggered": flow.stops_triggered,
        "open_orders": sum(len(orders) for orders in engine.open_orders.values()),
        "users": args.users,
        "markets": markets,
        "seed": args.seed,
        "gc": "off" if args.gc_off else "on",
        "profiled": bool(args.profile),
        "python": sys.version.split()[0],
    }
    print(
        f"applied {result['commands']:,} commands in {wall_ns / 1e9:.2f} s: "
        f"{result['commands_per_s']:,} commands/s"
    )
    print(
        f"time per command (µs): p50 {result['p50_us']}  p99 {result['p99_us']}  "
        f"p99.9 {result['p999_us']}  max {result['max_us']}  mean {result['mean_us']}"
    )
    print(
        f"trades {trades:,}  rejected {rejected:,}  open orders at the end "
        f"{result['open_orders']:,}  stops triggered {flow.stops_triggered:,}"
    )
    print(
        "p50 by trades per command (µs): "
        + "  ".join(f"{made}: {us}" for made, us in p50_by_trades.items())
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
