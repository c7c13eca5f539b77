"""Through real sockets: hypercorn serving the app, driven by curl (bin/api's refusals of unsafe
starts: tests/test_unsafe_listen.py)."""

from __future__ import annotations

import json
import shlex

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from exchange.api.app import create_app
from exchange.dev.localservers import free_port
from tests.api.conftest import ADMIN_TOKEN, Stack

# The seed README's three requests, verbatim but for the port.
SEED_CURLS = [
    """curl -X POST http://localhost:8000/api/v1/order -H 'Content-Type: application/json' -d '{"market":"TATA_INR","price":"100.5","quantity":"10","side":"buy","user_id":"1"}'""",
    """curl 'http://localhost:8000/api/v1/depth?symbol=TATA_INR'""",
    """curl 'http://localhost:8000/api/v1/order/open?market=TATA_INR&user_id=1'""",
]


async def curl(command: str, port: int) -> dict | list:
    argv = shlex.split(command.replace("localhost:8000", f"127.0.0.1:{port}"))
    result = await trio.run_process([*argv, "-sS", "--max-time", "10"], capture_stdout=True)
    return json.loads(result.stdout)


async def test_seed_readme_requests_over_hypercorn(stack: Stack, nursery: trio.Nursery):
    port = free_port()
    app = create_app(attrs.evolve(stack.settings, api_port=port))
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    shutdown = trio.Event()
    await nursery.start(
        lambda task_status: serve(
            app, config, shutdown_trigger=shutdown.wait, task_status=task_status
        )
    )

    for user, asset, amount in (("1", "INR", "10000"), ("2", "TATA", "100")):
        deposit = (
            f"curl -X POST http://localhost:8000/api/v1/admin/deposit -H 'X-ADMIN-TOKEN: {ADMIN_TOKEN}' "
            f"-H 'Content-Type: application/json' "
            f"""-d '{{"user_id":"{user}","asset":"{asset}","amount":"{amount}"}}'"""
        )
        assert "error" not in await curl(deposit, port)

    placed = await curl(SEED_CURLS[0], port)
    assert placed["status"] == "new" and placed["price"] == "100.5" and placed["quantity"] == "10"
    depth = await curl(SEED_CURLS[1], port)
    assert depth["bids"] == [["100.5", "10"]] and depth["asks"] == []
    open_orders = await curl(SEED_CURLS[2], port)
    assert [o["order_id"] for o in open_orders] == [placed["order_id"]]
    shutdown.set()
