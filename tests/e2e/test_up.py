"""`just up` of this checkout, with its data in a temporary directory: the auth modes it offers
and how it rides out the death of its own Redis or PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from exchange.dev.localservers import free_port
from exchange.surfaces.native import signing

from .helpers import ROOT, Up, clean_env, eventually, request, stack_state

pytestmark = pytest.mark.slow

JUST = str(Path(sys.executable).parent / "just")


def just_up(tmp_path: Path, *args: str, **settings: str) -> tuple[Up, str]:
    api_port, ws_port = free_port(), free_port()
    env = clean_env(
        EXCHANGE_DATA_DIR=str(tmp_path / "var"),
        API_PORT=str(api_port),
        WS_PORT=str(ws_port),
        **settings,
    )
    up = Up([JUST, *args], ROOT, env, tmp_path / "up.log")
    return up, f"http://127.0.0.1:{api_port}"


def shell(command: str) -> dict:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("args", "settings"),
    [(("up",), {"EXCHANGE_AUTH": "apikey"}), (("up-secure",), {})],
    ids=["EXCHANGE_AUTH=apikey just up", "just up-secure"],
)
def test_apikey_mode_has_no_demo_users_and_says_how_to_make_one(
    tmp_path: Path, args: tuple[str, ...], settings: dict[str, str]
) -> None:
    up, api = just_up(tmp_path, *args, **settings)
    with up:
        text = up.text()
        assert "funded demo users" not in text and "AUTH IS OFF" not in text
        token = stack_state(tmp_path / "var")["admin_token"]
        assert f"admin token: {token}" in text
        status, config = request("GET", f"{api}/api/v1/config")
        assert status == 200 and config["auth"] == "apikey", config  # type: ignore[index]
        status, _ = request("GET", f"{api}/api/v1/balances?user_id=1")
        assert status == 401

        # The banner's two requests, run as printed: create a user, then fund it.
        create = re.search(r"curl -X POST \S+/api/v1/admin/users .*", text)
        fund = re.search(r"curl -X POST \S+/api/v1/admin/deposit .*\\\n.*", text)
        assert create and fund, text
        user = shell(create.group())
        assert set(user) >= {"user_id", "api_key", "api_secret"}, user
        balances = shell(fund.group().replace("<user_id>", user["user_id"]))
        assert balances["INR"] == {"available": "1000", "locked": "0"}, balances

        timestamp = str(int(time.time() * 1000))
        target = "/api/v1/balances"
        status, signed = request(
            "GET",
            api + target,
            headers={
                "X-API-KEY": user["api_key"],
                "X-TIMESTAMP": timestamp,
                "X-SIGNATURE": signing.sign_request(user["api_secret"], timestamp, "GET", target),
            },
        )
        assert status == 200 and signed["INR"]["available"] == "1000", signed  # type: ignore[index]


class OrderFlow(threading.Thread):
    """User 1 bids 1 TATA at 100, user 2 sells 1 at market into it, again and again; every order
    that got a 200 is kept."""

    MAX_ACKNOWLEDGED = 1000  # a user's history and fills are read in one page of at most 1000

    def __init__(self, api: str) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.acknowledged: list[tuple[str, str]] = []  # (user_id, order_id)
        self.done = threading.Event()

    def run(self) -> None:
        orders = [
            {"price": "100", "quantity": "1", "side": "buy", "user_id": "1"},
            {"type": "market", "quantity": "1", "side": "sell", "user_id": "2"},
        ]
        while len(self.acknowledged) < self.MAX_ACKNOWLEDGED:
            for order in orders:
                if self.done.is_set():
                    return
                try:
                    status, body = request(
                        "POST", f"{self.api}/api/v1/order", {"market": "TATA_INR", **order}
                    )
                except OSError:
                    status, body = 0, None
                if status == 200:
                    self.acknowledged.append((order["user_id"], body["order_id"]))  # type: ignore[index]
                else:
                    time.sleep(0.05)  # an outage: refused, or its outcome unknown

    def wait_for_more(self, count: int, timeout_s: float = 60) -> None:
        target = len(self.acknowledged) + count
        eventually(lambda: len(self.acknowledged) >= target, timeout_s)


def _kill_and_wait_back(up: Up, name: str, pid: int, times: int) -> None:
    os.kill(pid, signal.SIGKILL)
    up.wait_for(f"{name} died", 30, count=times)
    up.wait_for(f"{name} is back", 60, count=times)


def test_up_restarts_its_redis_and_postgres_when_they_are_killed(tmp_path: Path) -> None:
    up, api = just_up(tmp_path, "up")
    with up:
        var = tmp_path / "var"
        state = stack_state(var)
        flow = OrderFlow(api)
        flow.start()
        try:
            flow.wait_for_more(40)
            client = redis.Redis(port=state["redis_port"])
            redis_pid = client.info("server")["process_id"]
            client.close()
            _kill_and_wait_back(up, "redis", redis_pid, times=1)
            client = redis.Redis(port=state["redis_port"])
            assert client.info("server")["process_id"] != redis_pid
            client.close()
            flow.wait_for_more(40)
            postmaster_pid = int((var / "postgres" / "postmaster.pid").read_text().split()[0])
            _kill_and_wait_back(up, "postgres", postmaster_pid, times=1)
            flow.wait_for_more(40)
        finally:
            flow.done.set()
            flow.join(30)
        # (Refusals during the outages are allowed, not required: a restart can be quick enough
        # for every request to ride it out.)

        for user in "12":
            status, _ = request("DELETE", f"{api}/api/v1/orders?user_id={user}")
            assert status == 200
        # Every order that got a 200 is in the engine (and closed now)…
        for user, order_id in flow.acknowledged:
            status, order = request("GET", f"{api}/api/v1/order?order_id={order_id}&user_id={user}")
            assert status == 200, (user, order_id, order)
            assert order["status"] in ("filled", "cancelled", "expired"), order  # type: ignore[index]

        # …and, a moment later, in PostgreSQL's order history.
        def history_has_every_order() -> bool:
            for user in "12":
                status, closed = request(
                    "GET", f"{api}/api/v1/orders/history?market=TATA_INR&limit=1000&user_id={user}"
                )
                assert status == 200, closed
                ids = {order["order_id"] for order in closed}  # type: ignore[union-attr]
                missing = {o for u, o in flow.acknowledged if u == user} - ids
                assert not missing, f"user {user}: {len(missing)} orders not in history"
            return True

        eventually(history_has_every_order, 60)

        # Balances reconcile to the unit with the fills PostgreSQL recorded.
        totals = Counter[str]()
        for user in "12":
            status, fills = request(
                "GET", f"{api}/api/v1/fills?market=TATA_INR&limit=1000&user_id={user}"
            )
            assert status == 200 and len(fills) < 1000  # type: ignore[arg-type]
            expected = {"TATA": Decimal(1_000_000), "INR": Decimal(1_000_000)}
            for fill in fills:  # type: ignore[union-attr]
                sign = 1 if fill["side"] == "buy" else -1
                expected["TATA"] += sign * Decimal(fill["quantity"])
                expected["INR"] -= sign * Decimal(fill["quote_quantity"])
            status, balances = request("GET", f"{api}/api/v1/balances?user_id={user}")
            for asset, amount in expected.items():
                assert balances[asset]["locked"] == "0", balances  # type: ignore[index]
                assert Decimal(balances[asset]["available"]) == amount, (user, asset, balances)  # type: ignore[index]
                totals[asset] += amount
        assert totals == {"TATA": 2_000_000, "INR": 2_000_000}
