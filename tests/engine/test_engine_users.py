"""CreateUser: the engine hands out user ids no one has used, the same ones on every replay, and
keeps handing out new ones after a snapshot."""

from __future__ import annotations

from engine_harness import Harness

from exchange.engine import snapshot
from exchange.models import Balance, CreateUser, GetBalances, GetOpenOrders, UserCreated


def created(h: Harness, above: int = 0) -> str:
    reply = h(CreateUser(above)).reply
    assert isinstance(reply, UserCreated)
    return reply.user_id


def history(h: Harness) -> list[str]:
    """Users named freely (as dev mode does) interleaved with created ones."""
    ids = []
    for user in ("1", "2", "3", "4", "5"):
        h.fund(user, INR=10**6, TATA=10**6)
    ids.append(created(h))
    h.fund("7", INR=10**6)
    h.buy("7", 100, 1)
    h.sell("1", 100, 1)  # 7 traded
    h.fund("9", TATA=100)
    ids += [created(h) for _ in range(6)]
    h.fund("15", INR=1)
    ids += [created(h) for _ in range(3)]
    return ids


def test_created_ids_skip_every_user_that_held_a_balance_or_an_order_and_never_repeat():
    h = Harness()
    ids = history(h)
    assert ids == ["6", "8", "10", "11", "12", "13", "14", "16", "17", "18"]
    for user_id in ids:
        assert set(h.engine.query(GetBalances(user_id)).values()) == {Balance(0, 0)}
        assert h.engine.query(GetOpenOrders(user_id)) == []


def test_above_skips_ids_taken_outside_the_engine():
    h = Harness()
    assert created(h, above=40) == "41"
    assert created(h) == "42"  # never back below what it handed out
    assert created(h, above=3) == "43"


def test_replay_gives_the_same_ids_and_a_snapshot_keeps_the_counter():
    first, second = Harness(), Harness()
    assert history(first) == history(second)
    restored = snapshot.loads(snapshot.dumps(first.engine), first.config)
    assert snapshot.state_hash(restored) == snapshot.state_hash(first.engine)
    seq = first.seq + 1
    assert restored.apply(CreateUser(), seq=seq, ts=0).reply == UserCreated("19")
    assert first.engine.apply(CreateUser(), seq=seq, ts=0).reply == UserCreated("19")


def test_a_snapshot_from_before_create_user_still_skips_known_users():
    h = Harness()
    for user in ("1", "2", "3"):
        h.fund(user, INR=1)
    state = snapshot.to_state(h.engine)
    del state["next_user_id"]
    old = snapshot.from_state(state, h.config)
    assert old.apply(CreateUser(), seq=h.seq + 1, ts=0).reply == UserCreated("4")
