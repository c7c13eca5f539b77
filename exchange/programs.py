"""What every program's entry point shares: logging, garbage-collector tuning, stop signals."""

from __future__ import annotations

import gc
import logging
import os
import signal

import trio

# Python's cyclic collector runs every 700 net allocations and then rescans young objects; a
# program that allocates a few records per message pays for it in throughput and in pauses of
# up to ~150 ms once millions of long-lived objects (orders, books) exist. Reference counting
# frees nearly everything here; the collector only has to find rare cycles, so it can run far
# less often.
GC_THRESHOLDS = (100_000, 50, 50)


def configure_logging(program: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s",
    )


def tune_gc() -> None:
    """Freeze what is alive now (it lives for good: never rescan it) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def wait_for_stop_signal(log: logging.Logger) -> None:
    """Return at the first SIGINT or SIGTERM (logged)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: stopping", signal.Signals(signum).name)
            return


async def cancel_on_stop_signal(scope: trio.CancelScope, log: logging.Logger) -> None:
    """Cancel ``scope`` at the first SIGINT or SIGTERM."""
    await wait_for_stop_signal(log)
    scope.cancel()
