"""What the benchmarks share: a private exchange stack, and the CPU each of its processes uses.

:func:`private_stack` starts Redis and PostgreSQL (:mod:`exchange.dev.localservers`, fsync off) in a
directory the caller owns and the chosen programs of ``bin/`` against them, waits until the API
answers ``/readyz`` and stops everything on exit. :class:`CpuMeter` reads from ``/proc`` the CPU
seconds of each named process with all its descendants (API workers under hypercorn's
supervisor, PostgreSQL backends under the postmaster), so a benchmark can say what each program
costs per request, whatever else the machine runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exchange.dev.localservers import PostgresServer, RedisServer, free_port  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


# --- CPU from /proc ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    fields = _stat_fields(pid)
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    return sum(process_cpu_split_s(pid))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and of every descendant, live or exited.

    A live child is read directly; once it exits and is reaped its time moves into its parent's
    ``cutime``/``cstime``, which are counted too, so a child ending between two readings (a
    PostgreSQL backend, a restarted worker) is neither lost nor counted twice.
    """
    try:
        fields = _stat_fields(pid)
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    own = sum(int(fields[index]) for index in (11, 12, 13, 14)) / CLOCK_TICKS
    return own + sum(tree_cpu_s(child) for child in children)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, from ``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU used by each named process tree, and by the whole machine (``"machine"``)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def sample(self) -> dict[str, float]:
        out = {name: tree_cpu_s(pid) for name, pid in self.pids.items()}
        out["machine"] = machine_busy_s()
        return out

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds between two samples; ``"others"`` is the machine's rest."""
        used = {name: after[name] - before[name] for name in after}
        machine = used.pop("machine")
        used["others"] = max(0.0, machine - sum(used.values()))
        return used


# --- the stack -----------------------------------------------------------------------------------


def wait_ready(url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the stack did not become ready")


def post_json(url: str, body: object, headers: dict[str, str] | None = None) -> dict:
    """POST ``body`` as JSON; the decoded JSON answer (an HTTP error raises)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def admin_post(url: str, token: str, path: str, body: dict) -> dict:
    """An admin API call (``X-ADMIN-TOKEN``) to the API at ``url``."""
    return post_json(url + path, body, {"X-ADMIN-TOKEN": token})


@attrs.frozen
class Stack:
    """A running private stack: where its API listens and which process is which."""

    url: str
    admin_token: str
    env: dict[str, str]
    pids: dict[str, int]  # each program of bin/, "redis" and "postgres"
    log_path: Path


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGTERM all, then wait for each (killing it after ``STOP_TIMEOUT_S``)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def private_stack(
    tmp: Path,
    programs: tuple[str, ...] = ("engine", "db", "api"),
    *,
    api_workers: int = 1,
    auth: str = "dev",
) -> Iterator[Stack]:
    """Redis, PostgreSQL and ``bin/<program>`` for each of ``programs``, ready, rate limits off."""
    with (
        RedisServer.start(tmp / "redis") as redis_server,
        PostgresServer.start(tmp / "pg", fsync=False) as pg_server,
    ):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        admin_token = secrets.token_hex(16)
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": pg_server.create_database("bench"),
            "API_PORT": str(port),
            "API_WORKERS": str(api_workers),
            "WS_PORT": str(free_port()),
            "EXCHANGE_AUTH": auth,
            "EXCHANGE_ADMIN_TOKEN": admin_token,
            "EXCHANGE_SECRET_KEY": secrets.token_hex(32),
            "RATE_LIMIT_PRIVATE_PER_S": "0",
            "RATE_LIMIT_PUBLIC_PER_S": "0",
        }
        log_path = tmp / "stack.log"
        processes: list[subprocess.Popen] = []
        with open(log_path, "wb") as log:
            try:
                for name in programs:
                    command = [sys.executable, str(ROOT / "bin" / name)]
                    processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
                pids = {
                    name: process.pid for name, process in zip(programs, processes, strict=True)
                }
                pids |= {"redis": redis_server.pid, "postgres": pg_server.pid}
                try:
                    wait_ready(url)
                except RuntimeError:
                    print(log_path.read_text()[-4000:], file=sys.stderr)
                    raise
                yield Stack(url, admin_token, env, pids, log_path)
            finally:
                stop_processes(list(reversed(processes)))
