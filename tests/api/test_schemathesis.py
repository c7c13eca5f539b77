"""Schemathesis against the served OpenAPI document: no 5xx, every response as documented.

The whole stack (engine, db writer, hypercorn serving the app) runs in a trio loop of its own
thread for this module; schemathesis drives it over real sockets with a bounded number of
examples per operation.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
import schemathesis
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.dev.localservers import free_port
from exchange.engine import program as engine_program
from exchange.settings import Settings
from tests.api.conftest import ADMIN_TOKEN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _run_stack(settings: Settings, ready: threading.Event, box: dict) -> None:
    async def main() -> None:
        box["token"] = trio.lowlevel.current_trio_token()
        box["stop"] = stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(engine_program.run, settings)
            await nursery.start(db_writer.run, settings)
            config = Config()
            config.bind = [f"127.0.0.1:{settings.api_port}"]
            config.accesslog = None
            app = create_app(settings)
            await nursery.start(functools.partial(serve, app, config, shutdown_trigger=stop.wait))
            ready.set()
            await stop.wait()
            with trio.move_on_after(10):
                await trio.sleep(0.2)  # let hypercorn finish its graceful shutdown
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseException as exc:  # surfaced by the fixture
        box["error"] = exc
        ready.set()


@pytest.fixture(scope="module")
def base_url(redis_server, postgres_server) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    api_settings = Settings(
        redis_url=redis_server.url,
        database_url=postgres_server.create_database(f"t_{uuid.uuid4().hex}"),
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
        api_port=free_port(),
        rate_limit_private_per_s=0,
        rate_limit_public_per_s=0,
    )
    ready = threading.Event()
    box: dict = {}
    thread = threading.Thread(target=_run_stack, args=(api_settings, ready, box), daemon=True)
    thread.start()
    assert ready.wait(60), "the stack did not start"
    if "error" in box:
        raise box["error"]
    yield f"http://127.0.0.1:{api_settings.api_port}"
    trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
    thread.join(30)


@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(base_url: str):
    """Every operation, up to 20 generated examples each (schemathesis's pytest plugin does
    not run under pytest 9, so the operations are driven through Hypothesis here)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    failures: dict[str, str] = {}
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{name}: {text}" for name, text in failures.items())
    assert sum(statuses.values()) >= 5 * len(operations), statuses
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses
    print("schemathesis responses by status:", dict(sorted(statuses.items())))
