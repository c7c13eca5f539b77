"""The whole stack on free ports, driven by the real ccxt ``backpack`` classes.

``exchange`` runs the engine (the shared ``engine_service`` fixture), the db writer, the API
served by hypercorn on a real socket (API keys, not dev mode) and the WebSocket server. ccxt's
sync client runs in trio worker threads; its asyncio clients (async and pro) run in a thread of
their own under ``asyncio.run`` (:func:`run_asyncio`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import ccxt
import ccxt.async_support
import ccxt.pro
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypercorn.config import Config
from hypercorn.trio import serve

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.dev.localservers import free_port
from exchange.settings import Settings
from exchange.ws import server as ws_server

ADMIN_TOKEN = "test-admin-token"
POLL_TIMEOUT_S = 10.0


@attrs.frozen
class Keys:
    """An ED25519 key pair as ccxt takes it (base64 raw public key, base64 32-byte seed)."""

    api_key: str
    secret: str

    @classmethod
    def generate(cls) -> Keys:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        seed = private.private_bytes_raw()
        return cls(base64.b64encode(public).decode(), base64.b64encode(seed).decode())


@attrs.frozen
class User:
    user_id: str
    keys: Keys
    hmac_key: str
    hmac_secret: str


@attrs.frozen
class Exchange:
    settings: Settings
    api_port: int
    ws_port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def urls(self) -> dict[str, Any]:
        rest = f"{self.base}/backpack"
        ws = f"ws://127.0.0.1:{self.ws_port}/backpack"
        return {"api": {"public": rest, "private": rest, "ws": {"public": ws, "private": ws}}}

    def options(self, keys: Keys | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {"urls": self.urls, "enableRateLimit": False, "timeout": 10_000}
        if keys is not None:
            options.update(apiKey=keys.api_key, secret=keys.secret)
        return options

    def sync(self, keys: Keys | None = None) -> ccxt.backpack:
        return ccxt.backpack(self.options(keys))

    def asyncio_client(self, keys: Keys | None = None) -> ccxt.async_support.backpack:
        return ccxt.async_support.backpack(self.options(keys))

    def pro(self, keys: Keys | None = None) -> ccxt.pro.backpack:
        return ccxt.pro.backpack(self.options(keys))

    def http(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        """(status, parsed JSON) of a plain HTTP request (blocking: call in a thread)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=dict(headers or {})
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    async def call(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        return await trio.to_thread.run_sync(self.http, method, path, body, headers)

    async def admin(self, path: str, body: Any) -> Any:
        status, answer = await self.call("POST", path, body, {"X-ADMIN-TOKEN": ADMIN_TOKEN})
        assert status == 200, (path, status, answer)
        return answer

    async def user(self, **deposits: str) -> User:
        """A new user with an ED25519 key (and the HMAC key every user gets), funded."""
        keys = Keys.generate()
        made = await self.admin("/api/v1/admin/users", {"ed25519_public_key": keys.api_key})
        assert made["ed25519_public_key"] == keys.api_key
        for asset, amount in deposits.items():
            await self.admin(
                "/api/v1/admin/deposit",
                {"user_id": made["user_id"], "asset": asset, "amount": amount},
            )
        return User(made["user_id"], keys, made["api_key"], made["api_secret"])


async def serve_api(settings: Settings, nursery: trio.Nursery) -> int:
    port = free_port()
    app = create_app(attrs.evolve(settings, api_port=port))
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    await nursery.start(
        lambda task_status: serve(
            app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status
        )
    )
    return port


@pytest.fixture
async def exchange(engine_service: Settings, database_url: str, nursery: trio.Nursery) -> Exchange:
    settings = attrs.evolve(
        engine_service,
        database_url=database_url,
        auth_mode="apikey",
        admin_token=ADMIN_TOKEN,
        engine_timeout_s=5.0,
        ws_port=0,
    )
    await nursery.start(db_writer.run, settings)
    api_port = await serve_api(settings, nursery)
    ws_port = await nursery.start(
        lambda task_status: ws_server.run(settings, task_status=task_status)
    )
    return Exchange(settings, api_port, ws_port)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking call (ccxt's sync client) in a worker thread, bounded in time."""
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn, *args)


async def run_asyncio(main: Callable[[], Coroutine[Any, Any, Any]], timeout_s: float = 60) -> Any:
    """Run an asyncio coroutine (ccxt async/pro) to completion in a thread of its own."""

    def runner() -> Any:
        return asyncio.run(asyncio.wait_for(main(), timeout_s))

    with trio.fail_after(timeout_s + 5):
        return await trio.to_thread.run_sync(runner)


async def eventually(probe: Callable[[], Any], timeout_s: float = POLL_TIMEOUT_S) -> Any:
    """Poll ``probe`` (async; truthy when done) until it succeeds."""
    with trio.fail_after(timeout_s):
        while True:
            result = await probe()
            if result:
                return result
            await trio.sleep(0.05)
