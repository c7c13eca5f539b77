"""A running exchange for the browser tests: the four real programs on free ports, and Chromium.

The stack (``bin/engine``, ``bin/db``, ``bin/api`` under hypercorn, ``bin/ws``) runs as child
processes on the session's private Redis and a fresh PostgreSQL database, in dev auth mode, for
the whole module; the browser is Debian's ``/usr/bin/chromium`` driven by Playwright's sync API
(plain ``def`` tests, which pytest-trio leaves alone). Without that binary the tests are skipped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from exchange.dev import webassets
from exchange.dev.localservers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--headless",
]
ADMIN_TOKEN = "web-test-admin-token"
READY_TIMEOUT_S = 60.0
POLL_TIMEOUT_S = 10.0

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)


def eventually(probe: Callable[[], Any], timeout_s: float = POLL_TIMEOUT_S, what: str = "") -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or probe}: last {last!r}")


class Rest:
    """A blocking JSON client for the test's own REST calls (dev auth: user_id in the request)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, parsed = self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, parsed)
        return parsed

    def admin(self, path: str, body: Any) -> Any:
        return self.ok("POST", path, body, headers={"X-ADMIN-TOKEN": ADMIN_TOKEN})

    def deposit(self, user_id: str, asset: str, amount: str) -> Any:
        return self.admin(
            "/api/v1/admin/deposit", {"user_id": user_id, "asset": asset, "amount": amount}
        )

    def order(self, user_id: str, **fields: Any) -> dict:
        return self.ok("POST", "/api/v1/order", {"user_id": user_id, **fields})

    def depth(self, market: str) -> dict:
        return self.ok("GET", f"/api/v1/depth?symbol={market}&limit=5000")


class Program:
    """One of ``bin/*`` as a child process with its log in a file."""

    def __init__(self, name: str, env: dict[str, str], logs: Path, label: str = "") -> None:
        self.name = name
        self.env = env
        self.log_path = logs / f"{label or name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / self.name)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Stack:
    """The running exchange: its URLs, REST helper and programs."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.api_port = int(env["API_PORT"])
        self.ws_port = int(env["WS_PORT"])
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.rest = Rest(self.base_url)
        self.programs = {name: Program(name, env, logs) for name in ("engine", "db", "api", "ws")}
        self.users: set[str] = set()

    def wait_ready(self) -> None:
        def ready() -> bool:
            for program in self.programs.values():
                assert program.process and program.process.poll() is None, (
                    f"{program.name} exited; see {program.log_path}:\n"
                    + program.log_path.read_text()[-3000:]
                )
            try:
                return self.rest.call("GET", "/readyz")[0] == 200 and port_open(self.ws_port)
            except OSError:
                return False

        eventually(ready, READY_TIMEOUT_S, "the stack to be ready")

    def user(self, name: str, **amounts: str) -> str:
        """A user of this module (cleaned up after each test), funded with ``amounts``."""
        self.users.add(name)
        for asset, amount in amounts.items():
            self.rest.deposit(name, asset, amount)
        return name

    def cancel_everything(self) -> None:
        for user in self.users:
            self.rest.ok("DELETE", f"/api/v1/orders?user_id={user}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path_factory
) -> Iterator[Stack]:
    webassets.prepare()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    logs = tmp_path_factory.mktemp("web-stack-logs")
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": postgres_server.create_database(f"web_{os.getpid()}_{time.time_ns()}"),
        "API_PORT": str(free_port()),
        "WS_PORT": str(free_port()),
        "EXCHANGE_AUTH": "dev",
        "EXCHANGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(env, logs)
    try:
        for program in stack.programs.values():
            program.start()
        stack.wait_ready()
        yield stack
    finally:
        for name in ("api", "ws", "db", "engine"):
            stack.programs[name].stop()


@pytest.fixture(scope="module")
def secure_stack(stack: Stack, tmp_path_factory) -> Iterator[Stack]:
    """A second API and WebSocket server in API-key mode over the same engine and database."""
    env = {
        **stack.env,
        "API_PORT": str(free_port()),
        "WS_PORT": str(free_port()),
        "EXCHANGE_AUTH": "apikey",
    }
    secure = Stack(env, tmp_path_factory.mktemp("web-secure-logs"))
    secure.programs = {
        name: Program(name, env, secure.programs[name].log_path.parent, f"secure-{name}")
        for name in ("api", "ws")
    }
    try:
        for program in secure.programs.values():
            program.start()
        secure.wait_ready()
        yield secure
    finally:
        for program in secure.programs.values():
            program.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(stack: Stack, browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(path="/", width=1280, height=800)`` → a Playwright page, loaded and ready
    (``base_url`` picks another server). Orders the module's users left behind are cancelled
    after the test."""
    contexts = []

    def open_(
        path: str = "/", width: int = 1280, height: int = 800, base_url: str | None = None
    ) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.js_errors = errors
        page.goto((base_url or stack.base_url) + path)
        try:
            page.wait_for_selector("body[data-ready='1']", timeout=POLL_TIMEOUT_S * 1000)
        except Exception as exc:
            raise AssertionError(f"the page did not start: {errors} {console}") from exc
        return page

    try:
        yield open_
    finally:
        for context in contexts:
            context.close()
        stack.cancel_everything()
