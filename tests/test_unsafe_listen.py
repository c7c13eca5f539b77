"""Every program that listens refuses an unsafe start on an address other machines can reach.

``bin/api`` and ``bin/ws`` run as the operator runs them (subprocesses, settings from the
environment). On a non-loopback host, dev auth or the public default ``EXCHANGE_SECRET_KEY``
must make them exit with status 2 and say why, before they start anything: the Redis and
PostgreSQL they are pointed at are plain listening sockets of this test, which must never see a
connection. The same settings on a loopback address do start (and do connect), which shows the
probe would notice.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from exchange.dev.localservers import free_port
from exchange.errors import ConfigError
from exchange.settings import DEV_SECRET_KEY, Settings, is_loopback

ROOT = Path(__file__).resolve().parents[1]
EXIT_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 60
PRIVATE_KEY = "a-long-random-operator-chosen-secret-key"
PROGRAMS = {"api": "API", "ws": "WS"}
DEV_WITH_KEY = {"EXCHANGE_AUTH": "dev", "EXCHANGE_SECRET_KEY": PRIVATE_KEY}


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A socket that accepts connections no one answers: stands in for Redis or PostgreSQL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def was_connected(sock: socket.socket) -> bool:
    """Whether anything connected (the kernel completes a connection before any accept)."""
    sock.setblocking(False)
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def program_env(program: str, host: str, redis: socket.socket, pg: socket.socket, **extra: str):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXCHANGE_", "API_", "WS_", "REDIS_", "DATABASE_"))
    }
    prefix = PROGRAMS[program]
    env |= {
        f"{prefix}_HOST": host,
        f"{prefix}_PORT": str(free_port()),
        "REDIS_URL": f"redis://127.0.0.1:{redis.getsockname()[1]}/0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg.getsockname()[1]}/postgres",
        "PYTHONPATH": str(ROOT),
    }
    return env | extra


def command(program: str) -> list[str]:
    return [sys.executable, str(ROOT / "bin" / program)]


UNSAFE = [
    pytest.param("0.0.0.0", DEV_WITH_KEY, "EXCHANGE_AUTH=dev", id="dev-auth"),
    pytest.param("0.0.0.0", {"EXCHANGE_AUTH": "apikey"}, "EXCHANGE_SECRET_KEY", id="default-key"),
    pytest.param(
        "::",
        {"EXCHANGE_AUTH": "apikey", "EXCHANGE_SECRET_KEY": ""},
        "EXCHANGE_SECRET_KEY",
        id="empty-key-ipv6",
    ),
    pytest.param(
        "192.0.2.10",
        DEV_WITH_KEY | {"WS_WORKERS": "2", "API_WORKERS": "2"},
        "EXCHANGE_AUTH=dev",
        id="dev-auth-workers",
    ),
]


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize(("host", "env", "reason"), UNSAFE)
def test_unsafe_start_on_a_public_address_exits_2(program, host, env, reason):
    with listening_socket() as redis, listening_socket() as pg:
        done = subprocess.run(
            command(program),
            env=program_env(program, host, redis, pg, **env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT_S,
        )
        assert done.returncode == 2, (done.returncode, done.stderr)
        assert f"{program}: refusing to listen on {host!r}" in done.stderr, done.stderr
        assert reason in done.stderr, done.stderr
        assert not was_connected(redis), "it connected to Redis before refusing"
        assert not was_connected(pg), "it connected to PostgreSQL before refusing"


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_the_same_start_on_loopback_goes_ahead(program):
    """Dev auth and the default key are fine on 127.0.0.1: the program starts and connects."""
    with listening_socket() as redis, listening_socket() as pg:
        env = program_env(program, "127.0.0.1", redis, pg, EXCHANGE_AUTH="dev")
        process = subprocess.Popen(
            command(program), env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        try:
            redis.settimeout(CONNECT_TIMEOUT_S)
            conn, _ = redis.accept()  # socket.timeout (the test fails) if it never connects
            conn.close()
            assert process.poll() is None
        finally:
            process.kill()
            process.wait(timeout=EXIT_TIMEOUT_S)


def test_the_rule():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]")
    assert is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.com")
    safe = Settings(auth_mode="apikey", secret_key=PRIVATE_KEY)
    safe.check_listen("0.0.0.0")
    for unsafe in (
        Settings(auth_mode="dev", secret_key=PRIVATE_KEY),
        Settings(auth_mode="apikey", secret_key=DEV_SECRET_KEY),
    ):
        unsafe.check_listen("127.0.0.1")
        with pytest.raises(ConfigError, match="refusing to listen on '0.0.0.0'"):
            unsafe.check_listen("0.0.0.0")
