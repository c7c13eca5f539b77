"""Request parsing, stream names, AUTH and the frame format (pure pieces)."""

from __future__ import annotations

import json

import pytest
import trio

from exchange.markets import load_config
from exchange.surfaces.native import signing
from exchange.surfaces.native.ws_auth import Authenticator
from exchange.surfaces.native.ws_protocol import ProtocolError, Stream, parse_request, parse_stream
from exchange.ws.frames import Outbox, text_frame

CONFIG = load_config()


def test_parse_request() -> None:
    request = parse_request('{"method": "SUBSCRIBE", "params": ["depth@TATA_INR"], "id": 7}')
    assert (request.method, request.params, request.id) == ("SUBSCRIBE", ["depth@TATA_INR"], 7)
    assert parse_request(b'{"method": "AUTH", "params": {"user_id": "1"}}').id is None


@pytest.mark.parametrize(
    ("raw", "request_id"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ('{"method": "SUBSCRIBE", "params": ["trade@TATA_INR"], "id": [1]}', None),
        ('{"method": "PING", "id": 3}', 3),
        ('{"method": "SUBSCRIBE", "params": "trade@TATA_INR", "id": 4}', 4),
        ('{"method": "SUBSCRIBE", "params": [], "id": 5}', 5),
        ('{"method": "SUBSCRIBE", "params": [1], "id": 6}', 6),
        ('{"method": "AUTH", "params": ["x"], "id": "a"}', "a"),
    ],
)
def test_malformed_requests(raw: str, request_id: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(raw)
    assert caught.value.code == "INVALID_REQUEST"
    assert caught.value.request_id == request_id


def test_parse_stream() -> None:
    assert parse_stream("depth@TATA_INR", CONFIG) == Stream("depth@TATA_INR", "depth", "TATA_INR")
    assert parse_stream("kline_1w@BTC_USDT", CONFIG) == Stream(
        "kline_1w@BTC_USDT", "kline", "BTC_USDT", "1w"
    )
    assert parse_stream("orders", CONFIG).private
    for name, code in [
        ("depth@NOPE_INR", "INVALID_MARKET"),
        ("candles@TATA_INR", "INVALID_REQUEST"),
        ("kline_2m@TATA_INR", "INVALID_REQUEST"),
        ("depth", "INVALID_REQUEST"),
    ]:
        with pytest.raises(ProtocolError) as caught:
            parse_stream(name, CONFIG, 9)
        assert (caught.value.code, caught.value.request_id) == (code, 9)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frame_lengths(size: int) -> None:
    import wsproto.frame_protocol as fp

    payload = b"x" * size
    frame = text_frame(payload)
    # Parse it back with wsproto's own frame decoder (as a client would).
    decoder = fp.FrameProtocol(client=True, extensions=[])
    decoder.receive_bytes(frame)
    parsed = next(decoder.received_frames())
    assert parsed.opcode is fp.Opcode.TEXT and parsed.frame_finished and parsed.message_finished
    assert parsed.payload == payload.decode()


async def test_outbox_is_bounded_and_takes_everything() -> None:
    outbox = Outbox(2)
    assert outbox.put_nowait(("a",)) and outbox.put_nowait(("b",))  # type: ignore[arg-type]
    assert not outbox.put_nowait(("c",))  # type: ignore[arg-type]
    assert await outbox.get_all() == [("a",), ("b",)]
    with trio.move_on_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.get_all)
            await trio.sleep(0.01)
            outbox.put_nowait(("d",))  # type: ignore[arg-type]


async def test_auth_dev_mode() -> None:
    auth = Authenticator("dev")
    assert await auth.authenticate({"user_id": "alice"}) == "alice"
    assert await auth.authenticate({"user_id": 42}) == "42"
    with pytest.raises(ProtocolError) as caught:
        await auth.authenticate({"api_key": "k"}, 3)
    assert (caught.value.code, caught.value.request_id) == ("UNAUTHORIZED", 3)


async def test_auth_apikey_mode() -> None:
    now = 1_700_000_000_000

    async def lookup(api_key: str) -> tuple[str, str] | None:
        return ("7", "s3cret") if api_key == "key" else None

    auth = Authenticator("apikey", lookup, now_ms=lambda: now)
    good = {"api_key": "key", "timestamp": now - 4000}
    good["signature"] = signing.sign("s3cret", signing.auth_payload(str(now - 4000)))
    assert await auth.authenticate(good) == "7"
    assert await auth.authenticate({**good, "timestamp": str(now - 4000)}) == "7"
    stale = {"api_key": "key", "timestamp": now - 6000}
    stale["signature"] = signing.sign("s3cret", signing.auth_payload(str(now - 6000)))
    for params in (
        stale,
        {**good, "signature": "0" * 64},
        {**good, "api_key": "other"},
        {"user_id": "7"},
    ):
        with pytest.raises(ProtocolError) as caught:
            await auth.authenticate(params)
        assert caught.value.code == "UNAUTHORIZED", json.dumps(params)
