"""One connection without the network: heartbeat timers under MockClock, and the depth gate.

The server side is the real :class:`~exchange.surfaces.native.ws_connection.Client` on trio-websocket over an
in-memory stream pair, so virtual time jumps without any socket in the way.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events as ev
from trio_websocket import wrap_client_stream, wrap_server_stream

from exchange.markets import load_config
from exchange.surfaces.native import ws_render as render
from exchange.surfaces.native.ws_auth import Authenticator
from exchange.surfaces.native.ws_connection import Client
from exchange.ws.frames import Frame, merged
from exchange.ws.session import Limits

CONFIG = load_config()


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def _serve(nursery: trio.Nursery, stream: trio.abc.Stream, done: list) -> Client:
    request = await wrap_server_stream(nursery, stream)
    ws = await request.accept()
    client = Client(ws, None, CONFIG, Authenticator("dev"), Limits())  # type: ignore[arg-type]

    async def serve() -> None:
        await client.serve()
        done.append(trio.current_time())

    nursery.start_soon(serve)
    return client


async def test_silent_client_is_closed_after_ping_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    done: list[float] = []
    async with trio.open_nursery() as nursery:
        # A client that completes the handshake and then never reads again (no pongs).
        peer = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await client_stream.send_all(peer.send(ev.Request(host="test", target="/")))
        client = await _serve(nursery, server_stream, done)
        with trio.fail_after(1000):
            while not done:
                await trio.sleep(1)
        assert client.close_code == (1001, "ping timeout")
        # Pinged at 20 s, gave up at 40 s, then waited 2 s for a close handshake that never came.
        assert done == [42.0]
        nursery.cancel_scope.cancel()


async def test_answering_client_stays(autojump_clock: trio.testing.MockClock) -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    done: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, nursery, server_stream, done)
        ws = await wrap_client_stream(nursery, client_stream, "test", "/")  # answers pings
        await trio.sleep(3600)
        assert not done and not ws.closed
        await ws.send_message('{"method": "AUTH", "params": {"user_id": "u"}, "id": 1}')
        assert await ws.get_message() == '{"id":1,"result":null}'
        nursery.cancel_scope.cancel()


class _Hub:
    def __init__(self) -> None:
        self.requests: list[str] = []

    def request_snapshot(self, market: str, client: object) -> None:
        self.requests.append(market)


def _diff(first: int, last: int) -> Frame:
    event = {
        "market": "TATA_INR",
        "first_update_id": first,
        "last_update_id": last,
        "bids": [["100", "1"]],
        "asks": [],
        "timestamp": 0,
    }
    return render.depth_frame(event)


def _snapshot(last: int) -> Frame:
    return render.snapshot_frame(
        {"market": "TATA_INR", "bids": [], "asks": [], "last_update_id": last, "timestamp": 0}
    )


def test_depth_gate_buffers_drops_chains_and_resnapshots_on_gap() -> None:
    from exchange.surfaces.native.ws_connection import _DepthGate

    hub = _Hub()
    client = Client(None, hub, CONFIG, Authenticator("dev"), Limits())  # type: ignore[arg-type]
    client.gates["TATA_INR"] = _DepthGate()
    out: list[bytes] = []
    diffs = {n: _diff(n, n + 1) for n in (1, 3, 5, 7, 11)}
    for n in (1, 3, 5):  # arrive before the snapshot: held
        client._through_gate(diffs[n], out)
    assert out == []
    snapshot = _snapshot(4)  # covers ids up to 4: diffs 1-2 and 3-4 are dropped
    client._through_gate(snapshot, out)
    assert out == [snapshot.data, diffs[5].data]
    client._through_gate(diffs[7], out)
    assert out[-1] == diffs[7].data
    client._through_gate(_snapshot(2), out)  # a stale snapshot while in sync: ignored
    assert len(out) == 3
    # 9-10 never came: no wrong diff goes out, a new snapshot is requested instead.
    client._through_gate(diffs[11], out)
    assert len(out) == 3 and hub.requests == ["TATA_INR"]
    fresh = _snapshot(12)
    client._through_gate(fresh, out)
    assert out[-1] == fresh.data  # 11-12 is inside it and dropped
    client._through_gate(_diff(13, 13), out)
    assert len(out) == 5


def test_merged_frames_join_plain_frames_and_chained_diffs_only() -> None:
    plain = (Frame.of(b'{"a":1}'), Frame.of(b'{"b":2}'))
    (one,) = merged(plain)
    assert one.data == plain[0].data + plain[1].data and one.market is None

    chained = (_diff(1, 2), _diff(3, 3), _diff(4, 6))
    (run,) = merged(chained)
    assert run.data == b"".join(frame.data for frame in chained)
    assert (run.market, run.first_id, run.last_id, run.parts) == ("TATA_INR", 1, 6, chained)

    for unchanged in (
        (_diff(1, 2), _diff(4, 4)),  # a gap
        (_diff(1, 2), _snapshot(3)),  # a snapshot
        (Frame.of(b"{}"), _diff(1, 1)),  # mixed kinds
        (_diff(1, 1),),  # nothing to merge
    ):
        assert merged(unchanged) is unchanged


def test_depth_gate_takes_only_the_diffs_after_a_snapshot_inside_a_merged_run() -> None:
    from exchange.surfaces.native.ws_connection import _DepthGate

    client = Client(None, _Hub(), CONFIG, Authenticator("dev"), Limits())  # type: ignore[arg-type]
    client.gates["TATA_INR"] = _DepthGate()
    diffs = (_diff(1, 2), _diff(3, 4), _diff(5, 6), _diff(7, 7))
    (run,) = merged(diffs)
    out: list[bytes] = []
    client._through_gate(run, out)  # before the snapshot: held
    snapshot = _snapshot(4)
    client._through_gate(snapshot, out)
    assert out == [snapshot.data, diffs[2].data, diffs[3].data]
    (later,) = merged((_diff(8, 8), _diff(9, 10)))
    client._through_gate(later, out)  # in sync: the run goes out whole
    assert out[-1] == later.data and client.gates["TATA_INR"].last_id == 10
