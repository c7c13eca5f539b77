"""``POST /api/v1/admin/users`` always creates a new, empty user (contract v1.4, Users).

Its id was never used before in any mode: not by a ``user_id`` that held a balance or an order
in dev mode (the demo users included), not by an id an older credential store handed out, not
by another API instance asking at the same moment, and not after the engine restarts.
"""

from __future__ import annotations

import redis
import trio

from exchange.api.app import create_app
from exchange.credentials import NEXT_USER_ID, USERS
from exchange.engine import program as engine_program
from exchange.settings import Settings
from tests.api.conftest import ADMIN_TOKEN, Client, eventually

ZERO = {"available": "0", "locked": "0"}


async def create(api: Client) -> str:
    status, made = await api.admin("/api/v1/admin/users", {})
    assert status == 200, made
    return made["user_id"]


async def assert_new_and_empty(api: Client, user_id: str) -> None:
    balances = await api.ok("GET", f"/api/v1/balances?user_id={user_id}")
    assert balances and all(b == ZERO for b in balances.values()), (user_id, balances)
    assert await api.ok("GET", f"/api/v1/order/open?user_id={user_id}") == [], user_id
    history = f"/api/v1/orders/history?market=TATA_INR&user_id={user_id}"
    assert await api.ok("GET", history) == [], user_id
    fills = f"/api/v1/fills?market=TATA_INR&user_id={user_id}"
    assert await api.ok("GET", fills) == [], user_id


async def test_created_users_are_new_and_empty_in_dev_mode(client: Client):
    # users 1 and 2 are funded by the fixture; 3..5 as just up's demo users are
    for user in ("3", "4", "5"):
        await client.deposit(user, "INR", "1000000")
    # 7 trades with 1; 9 only holds an open order; 12 deposited and withdrew everything
    await client.deposit("7", "TATA", "10")
    await client.ok(
        "POST",
        "/api/v1/order",
        {"market": "TATA_INR", "side": "buy", "price": "10", "quantity": "2", "user_id": "1"},
    )
    await client.ok(
        "POST",
        "/api/v1/order",
        {"market": "TATA_INR", "side": "sell", "type": "market", "quantity": "2", "user_id": "7"},
    )
    await client.deposit("9", "INR", "50")
    await client.ok(
        "POST",
        "/api/v1/order",
        {"market": "TATA_INR", "side": "buy", "price": "5", "quantity": "10", "user_id": "9"},
    )
    await client.deposit("12", "INR", "1")
    status, _ = await client.admin(
        "/api/v1/admin/withdraw", {"user_id": "12", "asset": "INR", "amount": "1"}
    )
    assert status == 200
    # the trade reached the history, so an empty history below means something
    await eventually(
        lambda: client.ok("GET", "/api/v1/fills?market=TATA_INR&user_id=7"), timeout_s=10
    )

    used = {"1", "2", "3", "4", "5", "7", "9", "12"}
    created = [await create(client) for _ in range(20)]
    assert len(set(created)) == len(created)
    assert not used & set(created), sorted(used & set(created))
    assert max(int(user_id) for user_id in created) > 12  # well past the users above
    for user_id in created:
        await assert_new_and_empty(client, user_id)


async def test_api_instances_creating_at_once_never_share_an_id(make_client):
    created: list[str] = []
    async with make_client() as first, make_client() as second:

        async def burst(api: Client) -> None:
            for _ in range(15):
                created.append(await create(api))

        async with trio.open_nursery() as nursery:
            for api in (first, second, first, second):
                nursery.start_soon(burst, api)
    assert len(created) == 60 and len(set(created)) == 60


async def test_ids_an_older_credential_store_handed_out_are_skipped(make_client, redis_url):
    """An older version counted ids in Redis (``next_user_id``); those users keep theirs."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(NEXT_USER_ID, 3)
        client.hset(USERS, mapping={"1": "0", "2": "0", "3": "0", "5": "0"})
    finally:
        client.close()
    async with make_client(auth_mode="apikey") as api:
        assert [await create(api) for _ in range(3)] == ["4", "6", "7"]


async def test_ids_stay_new_across_engine_restarts(redis_url: str, database_url: str):
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
    )
    created: list[str] = []
    for _ in range(3):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine_program.run, settings)
            app = create_app(settings)
            async with app.test_app() as test_app:
                api = Client(test_app.test_client(), settings)
                await api.deposit(str(len(created) + 5), "INR", "1")  # a dev user takes an id
                created += [await create(api) for _ in range(3)]
            nursery.cancel_scope.cancel()  # the engine stops (final snapshot), then restarts
    assert len(set(created)) == len(created) == 9
    assert created == ["1", "2", "3", "4", "6", "7", "9", "10", "12"]
