"""The account ledger and the audit end to end: engine, db writer, PostgreSQL and the API.

A seeded flow over every market (fees on in TATA_INR) with deposits and withdrawals goes
through the real engine service; the writer records the ledger. Then the audit must be zero
in both parts, every user's ledger must sum to their balance, and corrupting one ledger row
(in SQL) and one balance (a tampered snapshot loaded by a restarted engine) must be named by
the audit, with the asset and the difference.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from pathlib import Path

import attrs
import psycopg
import pytest
import redis
import trio

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.dev.flow import Flow, Mix
from exchange.engine import program as engine_program
from exchange.engine import snapshot
from exchange.engine.snapshots_store import StoredSnapshot, decode_record, encode_record
from exchange.gateway import open_gateway
from exchange.markets import MarketConfig, load_config
from exchange.models import FEE_ACCOUNT, Deposit, Withdraw
from exchange.names import SNAPSHOT_INDEX_KEY, snapshot_key
from exchange.settings import Settings
from tests.api.conftest import ADMIN_TOKEN, POLL_TIMEOUT_S, Client, eventually
from tests.ws.ws_helpers import Client as WsClient
from tests.ws.ws_helpers import connect, ws_server

PACKAGED_MARKETS = Path(__file__).resolve().parents[2] / "exchange" / "markets.toml"
MIX = Mix(passive=0.45, cancel=0.1, crossing=0.4, market=0.05)


def _markets_with_fees(tmp_path: Path) -> Path:
    """The packaged markets, TATA_INR charging 10 bps to makers and 25 to takers."""
    text = PACKAGED_MARKETS.read_text()
    text = text.replace(
        'symbol = "TATA_INR"', 'symbol = "TATA_INR"\nmaker_fee_bps = 10\ntaker_fee_bps = 25', 1
    )
    path = tmp_path / "markets.toml"
    path.write_text(text)
    return path


@attrs.define
class Exchange:
    """The engine (stoppable, to tamper with its snapshot), the writer and an API client."""

    settings: Settings
    config: MarketConfig
    nursery: trio.Nursery
    client: Client | None = None
    _engine_scope: trio.CancelScope | None = None
    _engine_done: trio.Event | None = None

    async def start_engine(self) -> None:
        scope, done = trio.CancelScope(), trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await engine_program.run(self.settings, task_status=task_status)
            finally:
                done.set()

        await self.nursery.start(run)
        self._engine_scope, self._engine_done = scope, done

    async def stop_engine(self) -> None:
        """Stop cleanly: the engine snapshots on the way out."""
        self._engine_scope.cancel()
        await self._engine_done.wait()

    async def audit(self) -> dict:
        status, body, _ = await self.client.call(
            "GET", "/api/v1/admin/audit", headers={"X-ADMIN-TOKEN": ADMIN_TOKEN}
        )
        assert status == 200, body
        return body


@pytest.fixture
async def exchange(
    redis_url: str, database_url: str, nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[Exchange]:
    markets = _markets_with_fees(tmp_path)
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        markets_file=str(markets),
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
        engine_timeout_s=5.0,
        audit_wait_s=10.0,
    )
    ex = Exchange(settings, load_config(str(markets)), nursery)
    await ex.start_engine()
    await nursery.start(db_writer.run, settings)
    app = create_app(settings)
    async with app.test_app() as test_app:
        ex.client = Client(test_app.test_client(), settings)
        yield ex


def _flow(ex: Exchange, seed: int) -> Flow:
    return Flow(ex.config, seed=seed, users=6, mix=MIX)


async def _run_flow(ex: Exchange, *, seed: int, commands: int) -> list[str]:
    """Funding, trading on every market, and deposits and withdrawals in between (some
    refused for want of funds, which must move nothing). Returns the users."""
    flow = _flow(ex, seed)
    rng = random.Random(seed)
    assets = sorted(ex.config.assets)
    batch = list(flow.funding)
    for _ in range(commands):
        batch.append(flow.next_command())
        if rng.random() < 0.08:
            user, asset = rng.choice(flow.users), rng.choice(assets)
            amount = rng.randint(1, 10 ** ex.config.assets[asset].decimals * 50)
            batch.append(rng.choice([Deposit, Withdraw])(user, asset, amount))
    async with open_gateway(ex.settings.redis_url) as gateway:
        for start in range(0, len(batch), 200):
            await gateway.submit_many(batch[start : start + 200])
    # The flow must trade on every market (trades are read from the history, which may lag).
    for symbol in ex.config.markets:
        await eventually(partial(ex.client.ok, "GET", f"/api/v1/trades?symbol={symbol}&limit=1"))
    return flow.users


def _zero_everywhere(report: dict) -> None:
    for part in ("engine", "history"):
        assert report[part]["assets"], part
        for asset, totals in report[part]["assets"].items():
            assert totals["difference"] == "0", (part, asset, totals)
    assert report["ok"], report["problems"]
    assert report["engine"]["assets"] == report["history"]["assets"]


async def _caught_up(ex: Exchange) -> dict:
    """The audit once nothing is off (the writer may still be writing the flow's tail)."""
    with trio.move_on_after(POLL_TIMEOUT_S):
        while not (report := await ex.audit())["ok"]:
            await trio.sleep(0.05)
    return report


def _ledger_sums(database_url: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(user, asset) → (Σ amount, balance of the newest movement), in minor units."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """
            SELECT user_id, asset, sum(amount),
                   (array_agg(balance ORDER BY seq DESC, idx DESC))[1]
            FROM ledger GROUP BY user_id, asset
            """
        ).fetchall()
    return {(user, asset): (int(total), last) for user, asset, total, last in rows}


async def _latest_balances(client: WsClient) -> dict[str, dict[str, str]]:
    """Every ``balances`` frame until the stream is quiet, folded: the latest per asset."""
    latest: dict[str, dict[str, str]] = {}
    while True:
        with trio.move_on_after(1.0):
            frame = await client.recv()
            if frame.get("stream") == "balances":
                latest.update(frame["data"]["balances"])
            continue
        return latest


async def test_a_seeded_flow_is_accounted_for_to_the_unit(exchange: Exchange) -> None:
    ex = exchange
    watched = _flow(ex, 20).users[:2]
    async with (
        ws_server(ex.settings.redis_url) as port,
        connect(port) as first,
        connect(port) as second,
    ):
        for client, user in ((first, watched[0]), (second, watched[1])):
            await client.request("AUTH", {"user_id": user})
            await client.subscribe("balances")
        users = await _run_flow(ex, seed=20, commands=1500)
        # A last movement of every asset for the watched users: the pub/sub subscription may
        # have been re-established under load meanwhile (frames published during the gap are
        # lost, by design of pub/sub), and the frame to compare is the latest.
        async with open_gateway(ex.settings.redis_url) as gateway:
            await gateway.submit_many(
                [Deposit(user, asset, 1) for user in watched for asset in sorted(ex.config.assets)]
            )
        report = await _caught_up(ex)
        streamed = {
            user: await _latest_balances(c)
            for user, c in zip(watched, (first, second), strict=True)
        }
    # The balances stream and the ledger agree once the history has caught up.
    for user, latest in streamed.items():
        assert latest, user
        for asset, balance in latest.items():
            newest = await ex.client.ok(
                "GET", f"/api/v1/ledger?user_id={user}&asset={asset}&limit=1"
            )
            total = Decimal(balance["available"]) + Decimal(balance["locked"])
            assert Decimal(newest[0]["balance"]) == total, (user, asset)
    _zero_everywhere(report)
    fees = report["engine"]["assets"]
    assert Decimal(fees["INR"]["fees"]) > 0  # (TATA fees round to 0 on trades this small)
    assert fees["BTC"]["fees"] == "0"  # no fees elsewhere
    assert Decimal(fees["INR"]["withdrawals"]) > 0

    sums = _ledger_sums(ex.settings.database_url)
    for user in [*users, FEE_ACCOUNT]:
        balances = await ex.client.ok("GET", f"/api/v1/balances?user_id={user}")
        for asset, balance in balances.items():
            units = ex.config.assets[asset]
            total = units.to_units(Decimal(balance["available"]) + Decimal(balance["locked"]))
            summed, last = sums.get((user, asset), (0, 0))
            assert (summed, last) == (total, total), (user, asset)
            newest = await ex.client.ok(
                "GET", f"/api/v1/ledger?user_id={user}&asset={asset}&limit=1"
            )
            if total or summed:
                assert Decimal(newest[0]["balance"]) == Decimal(units.format(total))

    # The caller's page over every asset: newest first, each entry in the contract's shape.
    page = await ex.client.ok("GET", f"/api/v1/ledger?user_id={users[0]}&limit=50")
    assert len(page) == 50
    assert page == sorted(page, key=lambda e: (e["timestamp"], e["id"]), reverse=True)
    assert {e["kind"] for e in page} <= {"deposit", "withdrawal", "trade", "fee"}
    assert all(isinstance(e["ref"], str) and e["ref"].isdigit() for e in page)
    fee_rows = await ex.client.ok("GET", f"/api/v1/ledger?user_id={FEE_ACCOUNT}&limit=5")
    assert fee_rows and {e["kind"] for e in fee_rows} == {"fee"}
    status, body, _ = await ex.client.call("GET", "/api/v1/ledger?user_id=1&asset=DOGE")
    assert (status, body["error"]["code"]) == (400, "INVALID_ASSET")


async def test_a_transfer_id_is_in_the_reply_and_the_ledger(exchange: Exchange) -> None:
    ex = exchange
    status, deposit = await ex.client.admin(
        "/api/v1/admin/deposit", {"user_id": "7", "asset": "INR", "amount": "12.5"}
    )
    assert status == 200 and deposit["INR"] == {"available": "12.5", "locked": "0"}
    status, withdrawal = await ex.client.admin(
        "/api/v1/admin/withdraw", {"user_id": "7", "asset": "INR", "amount": "2"}
    )
    assert status == 200 and withdrawal["INR"]["available"] == "10.5"
    assert int(withdrawal["transfer_id"]) > int(deposit["transfer_id"])

    async def entries():
        rows = await ex.client.ok("GET", "/api/v1/ledger?user_id=7&asset=INR")
        return rows if len(rows) == 2 else None

    rows = await eventually(entries)
    assert [(r["kind"], r["amount"], r["balance"], r["ref"]) for r in rows] == [
        ("withdrawal", "-2", "10.5", withdrawal["transfer_id"]),
        ("deposit", "12.5", "12.5", deposit["transfer_id"]),
    ]


async def test_the_audit_names_a_corrupted_row_and_a_corrupted_balance(
    exchange: Exchange,
) -> None:
    ex = exchange
    await _run_flow(ex, seed=21, commands=300)
    _zero_everywhere(await _caught_up(ex))

    # One trade's INR fee off by 3 minor units, behind the writer's back: a fill row holds both
    # sides of each of its movements, so the seller paid 3 more and the fee account got 3 more,
    # the history's sums still balance, and the audit sees them part from the engine's.
    with psycopg.connect(ex.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ledger_fills SET seller_fee = seller_fee + 3 WHERE (seq, idx) = "
            "(SELECT seq, idx FROM ledger_fills WHERE quote = 'INR' AND seller_fee > 0"
            " ORDER BY seq DESC LIMIT 1)"
        )
    report = await ex.audit()
    assert not report["ok"]
    assert report["history"]["assets"]["INR"]["difference"] == "0"
    assert report["engine"]["assets"]["INR"]["difference"] == "0"
    assert "history INR: users differs from the engine's by -3" in report["problems"]
    assert "history INR: fees differs from the engine's by 3" in report["problems"]

    # One balance of USDT 5 minor units richer than any movement made it: a tampered snapshot
    # replayed into a fresh engine.
    await ex.stop_engine()
    client = redis.Redis.from_url(ex.settings.redis_url)
    newest = client.lindex(SNAPSHOT_INDEX_KEY, 0)
    stored = decode_record(client.get(snapshot_key(newest.decode())))
    engine = snapshot.loads(stored.blob, ex.config)
    user = next(u for u, held in engine.ledger.balances.items() if held.get("USDT", [0])[0])
    engine.ledger.balances[user]["USDT"][0] += 5
    tampered = StoredSnapshot(stored.log_id, stored.seq, snapshot.dumps(engine))
    client.set(snapshot_key(newest.decode()), encode_record(tampered))
    await ex.start_engine()

    report = await ex.audit()
    assert not report["ok"]
    assert report["engine"]["assets"]["USDT"]["difference"] == "-0.00000005"
    assert "engine USDT: difference -5" in report["problems"]
    assert "history USDT: users differs from the engine's by -5" in report["problems"]
