"""The API end to end: real Redis, the engine service, the db writer, PostgreSQL, the app.

``stack`` runs the engine (the shared ``engine_service`` fixture) and the db writer on the test's
private Redis and database; ``make_client`` builds an app on them (in-process, through Quart's test client)
with settings the test chooses, so one test can run several API instances at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import orjson
import pytest
import trio

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.settings import Settings

ADMIN_TOKEN = "test-admin-token"
POLL_TIMEOUT_S = 10.0


class Client:
    """A thin JSON helper over Quart's test client."""

    def __init__(self, test_client: Any, settings: Settings) -> None:
        self.raw = test_client
        self.settings = settings

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, parsed JSON body, response headers)."""
        if body is not None:
            data = orjson.dumps(body)
        headers = dict(headers or {})
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        response = await self.raw.open(path, method=method, data=data, headers=headers)
        raw = await response.get_data()
        parsed = orjson.loads(raw) if raw and response.mimetype == "application/json" else raw
        return response.status_code, parsed, response.headers

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, parsed, _ = await self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, parsed)
        return parsed

    async def admin(self, path: str, body: Any = None) -> tuple[int, Any]:
        status, parsed, _ = await self.call(
            "POST", path, body, headers={"X-ADMIN-TOKEN": ADMIN_TOKEN}
        )
        return status, parsed

    async def deposit(self, user_id: str, asset: str, amount: str) -> Any:
        status, parsed = await self.admin(
            "/api/v1/admin/deposit", {"user_id": user_id, "asset": asset, "amount": amount}
        )
        assert status == 200, parsed
        return parsed


@attrs.frozen
class Stack:
    settings: Settings
    nursery: trio.Nursery


@pytest.fixture
async def stack(engine_service: Settings, database_url: str, nursery: trio.Nursery) -> Stack:
    """The engine (shared fixture) and the db writer on this test's Redis and database."""
    settings = attrs.evolve(
        engine_service,
        database_url=database_url,
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
        engine_timeout_s=5.0,
    )
    await nursery.start(db_writer.run, settings)
    return Stack(settings, nursery)


@pytest.fixture
def make_client(stack: Stack) -> Callable[..., contextlib.AbstractAsyncContextManager[Client]]:
    """``async with make_client(**settings_changes) as client`` → an app and its test client."""

    @contextlib.asynccontextmanager
    async def open_client(**changes: Any) -> AsyncIterator[Client]:
        settings = attrs.evolve(stack.settings, **changes)
        app = create_app(settings)
        async with app.test_app() as test_app:
            yield Client(test_app.test_client(), settings)

    return open_client


@pytest.fixture
async def client(make_client) -> AsyncIterator[Client]:
    """A dev-mode API (user_id in the request), users "1" and "2" funded."""
    async with make_client() as api:
        for user in ("1", "2"):
            await api.deposit(user, "INR", "100000")
            await api.deposit(user, "TATA", "1000")
        yield api


async def eventually(probe: Callable[[], Any], timeout_s: float = POLL_TIMEOUT_S) -> Any:
    """Poll ``probe`` (async, returns a truthy value when done) until it succeeds."""
    with trio.fail_after(timeout_s):
        while True:
            result = await probe()
            if result:
                return result
            await trio.sleep(0.02)
