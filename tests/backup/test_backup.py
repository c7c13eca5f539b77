"""A backup taken in the middle of a seeded order flow, restored into fresh servers.

The exchange (engine with frequent snapshots, db writer) takes a flow of commands while the
backup runs in a thread. The restored exchange must hold exactly the state at the manifest's
engine sequence: the balances and open orders of every user equal those of a fresh engine that
applied the original log up to the backup's last command (the original keeps its whole log:
``snapshots_kept`` is large), and its history, once the db writer caught up, equals the
original's trades and order states up to that sequence. Then the flow goes on, on the restored
exchange. A corrupted, incomplete or newer backup, or a target that is not empty, is refused
with nothing written.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import orjson
import psycopg
import pytest
import redis
import trio

from exchange import codec
from exchange.backup import manifest as mf
from exchange.backup import redis_part
from exchange.backup.__main__ import main as backup_main
from exchange.backup.replay import replay
from exchange.backup.restore import BackupRefused, restore_backup
from exchange.backup.take import take_backup
from exchange.db import program as db_writer
from exchange.dev import devstack
from exchange.dev.flow import Flow
from exchange.dev.localservers import RedisServer
from exchange.engine import program as engine_program
from exchange.engine.snapshot import state_hash
from exchange.gateway import open_gateway
from exchange.markets import load_config
from exchange.models import GetBalances, GetOpenOrders
from exchange.names import COMMAND_STREAM, SNAPSHOT_INDEX_KEY, snapshot_key
from exchange.settings import Settings

USERS = 12
BEFORE, DURING, AFTER = 300, 300, 150
CHUNK = 25


@contextlib.asynccontextmanager
async def running_exchange(settings: Settings) -> AsyncIterator[None]:
    """The engine and the db writer on ``settings``, until the block ends."""
    async with trio.open_nursery() as nursery:
        await nursery.start(engine_program.run, settings)
        await nursery.start(db_writer.run, settings)
        yield
        nursery.cancel_scope.cancel()


async def _submit(gateway, commands) -> None:
    for start in range(0, len(commands), CHUNK):
        await gateway.submit_many(commands[start : start + CHUNK])


def _trades(url: str, up_to_seq: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, market, price, quantity, buyer_id, seller_id, seq, time FROM trades"
            " WHERE seq <= %s ORDER BY id",
            [up_to_seq],
        ).fetchall()


def _orders(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT order_id, status, executed_quantity, seq FROM orders ORDER BY order_id"
        ).fetchall()


def _max_order_seq(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM orders").fetchone()[0]


def _trade_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM trades").fetchone()[0]


async def _state(gateway, users: list[str]) -> list[bytes]:
    out = []
    for user in users:
        out.append(codec.encode(await gateway.query(GetBalances(user))))
        out.append(codec.encode(await gateway.query(GetOpenOrders(user))))
    return out


async def _eventually(probe, timeout_s: float = 30.0):
    with trio.fail_after(timeout_s):
        while not (result := await trio.to_thread.run_sync(probe)):
            await trio.sleep(0.05)
        return result


@pytest.fixture
def fresh_redis(tmp_path: Path):
    with RedisServer.start(tmp_path / "restored-redis") as server:
        yield server


async def test_backup_mid_flow_restores_that_state_and_the_flow_goes_on(
    redis_url: str, database_url: str, fresh_redis: RedisServer, postgres_server, tmp_path: Path
) -> None:
    config = load_config()
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        snapshot_every_commands=100,
        snapshots_kept=1000,  # the original keeps its whole log, for the reference below
    )
    flow = Flow(config, seed=21, users=USERS)
    before = flow.funding + flow.commands(BEFORE)
    during, after = flow.commands(DURING), flow.commands(AFTER)
    backup_dir = tmp_path / "backup"

    async with running_exchange(settings), open_gateway(redis_url) as gateway:
        await _submit(gateway, before)
        # The engine writes its snapshots in the background: the backup starts once one is kept.
        client = redis_part.connect(redis_url)
        await _eventually(lambda: redis_part.kept_snapshots(client))
        backed_up = trio.Event()

        async def trade_on() -> None:
            # Trading goes on during the backup; the second half waits for it to end, so the
            # backup is sure to fall inside the flow, with commands after it.
            await _submit(gateway, during[: DURING // 2])
            await backed_up.wait()
            await _submit(gateway, during[DURING // 2 :])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trade_on)
            manifest = await trio.to_thread.run_sync(take_backup, settings, backup_dir)
            backed_up.set()
        # The original's history past the backup's sequence, so its trades up to it are all in.
        await _eventually(lambda: _max_order_seq(database_url) > manifest.engine["seq"])

    seq = manifest.engine["seq"]
    assert manifest.engine["snapshot"] is not None, "taken after snapshots, it starts from one"
    assert manifest.engine["snapshot"]["seq"] <= seq
    assert len(before) <= seq < len(before) + len(during), "taken in the middle of the flow"
    assert manifest.engine["snapshot"]["seq"] < len(before) + len(during)
    # The reference: a fresh engine over the original log up to the backup's last command.
    original = redis.Redis.from_url(redis_url)
    log = original.xrange(COMMAND_STREAM, max=manifest.engine["log_until"])
    original.close()
    reference = replay(config, None, log)
    assert reference.seq == seq
    expected_trades = _trades(database_url, seq)
    assert expected_trades, "the flow traded before the backup"

    restored = attrs.evolve(
        settings,
        redis_url=fresh_redis.url,
        database_url=postgres_server.create_database("restored_" + backup_dir.parent.name[-20:]),
    )
    await trio.to_thread.run_sync(restore_backup, restored, backup_dir)
    # The whole engine state the restored Redis holds (every order, balance and id counter).
    assert _redis_state(config, restored.redis_url) == state_hash(reference)
    users = flow.users
    async with running_exchange(restored), open_gateway(restored.redis_url) as gateway:
        assert await _state(gateway, users) == _expected(reference, users)
        # The db writer catches the history up from the restored log: the original's trades
        # up to the backup's sequence, and nothing beyond it.
        await _eventually(lambda: _trades(restored.database_url, 10**12) == expected_trades)
        # The flow goes on from there: the commands it had not sent when the backup was taken
        # (those the original applied after it are gone with it), applied as a fresh engine
        # applies the original log up to the backup and the restored log after it.
        await _submit(gateway, during[seq - len(before) :] + after)
        client = redis.Redis.from_url(restored.redis_url)
        tail = client.xrange(COMMAND_STREAM, min=b"(" + manifest.engine["log_until"].encode())
        client.close()
        assert len(tail) == len(during) - (seq - len(before)) + len(after)
        continued = replay(config, None, log + tail)
        assert await _state(gateway, users) == _expected(continued, users)
        await _eventually(
            lambda: _trade_count(restored.database_url) == continued.next_trade_id - 1
        )
        assert _trades(restored.database_url, seq) == expected_trades
    assert _redis_state(config, restored.redis_url) == state_hash(continued)


def _redis_state(config, url: str) -> str:
    """The state hash of the engine a Redis recovers: its newest snapshot and the log after."""
    client = redis.Redis.from_url(url)
    try:
        newest = client.lindex(SNAPSHOT_INDEX_KEY, 0)
        record = None if newest is None else client.get(snapshot_key(newest.decode()))
        after = b"-" if newest is None else b"(" + newest
        return state_hash(replay(config, record, client.xrange(COMMAND_STREAM, min=after)))
    finally:
        client.close()


def _expected(engine, users: list[str]) -> list[bytes]:
    return [
        codec.encode(engine.query(query))
        for user in users
        for query in (GetBalances(user), GetOpenOrders(user))
    ]


async def test_a_corrupted_or_newer_backup_or_a_busy_target_is_refused(
    redis_url: str, database_url: str, fresh_redis: RedisServer, postgres_server, tmp_path: Path
) -> None:
    config = load_config()
    settings = Settings(redis_url=redis_url, database_url=database_url)
    flow = Flow(config, seed=5, users=4)
    good = tmp_path / "good"
    async with running_exchange(settings), open_gateway(redis_url) as gateway:
        await _submit(gateway, flow.funding + flow.commands(60))
        await trio.to_thread.run_sync(take_backup, settings, good)
        # The command line takes one too, and will not write into a directory in use.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("REDIS_URL", redis_url)
            env.setenv("DATABASE_URL", database_url)
            by_cli = [str(tmp_path / "by-cli")]
            assert await trio.to_thread.run_sync(backup_main, ["backup", *by_cli]) == 0
            assert (tmp_path / "by-cli" / mf.MANIFEST).exists()
            assert await trio.to_thread.run_sync(backup_main, ["backup", *by_cli]) == 2
    target = attrs.evolve(
        settings,
        redis_url=fresh_redis.url,
        database_url=postgres_server.create_database("target_" + tmp_path.name[-20:]),
    )

    def refused(directory: Path, settings: Settings = target) -> str:
        with pytest.raises(BackupRefused) as caught:
            restore_backup(settings, directory)
        return str(caught.value)

    def variant(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(good, copy)
        return copy

    flipped = variant("flipped")
    dump = bytearray((flipped / mf.HISTORY_PART).read_bytes())
    dump[len(dump) // 2] ^= 0xFF
    (flipped / mf.HISTORY_PART).write_bytes(bytes(dump))
    assert "history.pgdump does not match its checksum" in refused(flipped)

    missing = variant("missing")
    (missing / mf.COMMANDS_PART).unlink()
    assert "commands.jsonl is missing" in refused(missing)

    newer = variant("newer")
    data = orjson.loads((newer / mf.MANIFEST).read_bytes())
    data["version"] = mf.VERSION + 1
    (newer / mf.MANIFEST).write_bytes(orjson.dumps(data))
    assert "newer than this exchange reads" in refused(newer)

    # Nothing was written by any refusal.
    client = fresh_redis.client()
    assert client.dbsize() == 0
    with psycopg.connect(target.database_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            == 0
        )

    # A target that is not empty is refused too, and left as it was.
    client.set("something", "here")
    assert "the Redis at REDIS_URL holds keys" in refused(good)
    assert client.keys("*") == [b"something"]
    client.flushall()
    client.close()

    # The command line says the same and exits 2; a good backup restores (exit 0).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REDIS_URL", target.redis_url)
        env.setenv("DATABASE_URL", target.database_url)
        assert backup_main(["restore", str(flipped)]) == 2
        assert backup_main(["restore", str(good)]) == 0
        assert backup_main(["restore", str(good)]) == 2  # no longer empty

    # `just restore DIR`: into an empty ./var (its private servers), refused once it is not.
    with pytest.MonkeyPatch.context() as env:
        env.delenv("REDIS_URL", raising=False)
        env.delenv("DATABASE_URL", raising=False)
        data_dir = tmp_path / "var"
        assert devstack.restore(devstack.Stack(data_dir, secure=False), good) == 0
        assert (data_dir / "seeded").exists()  # the demo users are not funded on top
        assert devstack.restore(devstack.Stack(data_dir, secure=False), good) == 2
