"""What every program's entry point shares: logging, garbage-collector tuning, stop signals,
and a supervisor for programs that run as several worker processes."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import subprocess
import time

import trio

from exchange import settings
from exchange.errors import ConfigError

# Python's cyclic collector runs every 700 net allocations and then rescans young objects; a
# program that allocates a few records per message pays for it in throughput and in pauses of
# up to ~150 ms once millions of long-lived objects (orders, books) exist. Reference counting
# frees nearly everything here; the collector only has to find rare cycles, so it can run far
# less often.
GC_THRESHOLDS = (100_000, 50, 50)


def configure_logging(program: str) -> None:
    """Log at ``LOG_LEVEL``, each line prefixed with ``program``. It runs before the program
    loads its settings, so that their errors are logged: a malformed setting leaves the default
    level here, and the program's own ``settings.load()`` reports it next."""
    try:
        level = settings.load().log_level
    except ConfigError:
        level = settings.Settings().log_level
    logging.basicConfig(
        level=level, format=f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s"
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


_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In a worker before exec: SIGTERM it if the supervisor dies (Linux), never an orphan."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(command: list[str], count: int, env: dict[str, str], log: logging.Logger) -> int:
    """Run ``count`` copies of ``command`` (``env`` added) until they all exit; their exit code.

    SIGINT/SIGTERM are passed on once. A worker that exits on its own stops the others and
    makes this return 1, so whatever supervises this process sees the failure rather than a
    server that quietly lost part of its capacity.
    """
    workers = [
        # A session of their own: a terminal's Ctrl-C reaches the supervisor only, which
        # passes it on once (a second signal would cut a worker's graceful shutdown short).
        subprocess.Popen(
            command,
            env={**os.environ, **env},  # the whole environment, handed on (no setting read)
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        for _ in range(count)
    ]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    log.info("supervising %d workers", count)
    failed = False
    while True:
        codes = [worker.poll() for worker in workers]
        if None not in codes:
            break
        if not stopping and any(code is not None for code in codes):
            log.error("a worker exited on its own (%s); stopping the others", codes)
            failed = True
            stop(signal.SIGTERM, None)
        time.sleep(0.2)
    return 1 if failed or any(worker.returncode for worker in workers) else 0
