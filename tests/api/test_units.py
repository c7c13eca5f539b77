"""Pure parts of the API: request parsing, HMAC signing, token buckets (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from exchange.api.routes_admin import check_admin
from exchange.credentials import check_ed25519_key, derive_secret
from exchange.errors import ErrorCode, RequestError
from exchange.markets import load_config
from exchange.models import Deposit, OrderType, PlaceOrder, Side, Withdraw
from exchange.ratelimit import TokenBucketLimiter
from exchange.surfaces.commands import parse_order, parse_transfer
from exchange.surfaces.failures import retry_after_header
from exchange.surfaces.limits import limit_param
from exchange.surfaces.native import signing
from exchange.surfaces.params import market_of, parse_json, time_param

CONFIG = load_config()


def order(**fields):
    body = {"market": "TATA_INR", "side": "buy", "price": "100.5", "quantity": "10"}
    body.update(fields)
    return parse_order(CONFIG, {k: v for k, v in body.items() if v is not None}, user_id="1")


def refused(fn, *args, **kwargs) -> ErrorCode:
    with pytest.raises(RequestError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_order_is_read_exactly_into_ticks_and_lots():
    assert order() == PlaceOrder("1", "TATA_INR", Side.BUY, price=10050, quantity=1000)
    # JSON numbers arrive as Decimal (never float) and read the same
    assert order(price=Decimal("100.5"), quantity=10) == order()
    assert order(symbol="TATA_INR", market=None).market == "TATA_INR"
    market_buy = order(type="market", price=None, quantity=None, quote_quantity="50")
    assert (market_buy.type, market_buy.quote_quantity) == (OrderType.MARKET, 500_000)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"market": "NOPE_INR"}, ErrorCode.INVALID_MARKET),
        ({"market": None}, ErrorCode.INVALID_MARKET),
        ({"market": 5}, ErrorCode.INVALID_MARKET),
        ({"side": "up"}, ErrorCode.INVALID_SIDE),
        ({"type": "stop"}, ErrorCode.INVALID_TYPE),
        ({"time_in_force": "GTD"}, ErrorCode.INVALID_TIME_IN_FORCE),
        ({"price": "100.505"}, ErrorCode.INVALID_PRICE),
        ({"price": "0"}, ErrorCode.INVALID_PRICE),
        ({"price": "-1"}, ErrorCode.INVALID_PRICE),
        ({"price": 100.5}, ErrorCode.INVALID_PRICE),  # a binary float
        ({"price": "1e3"}, ErrorCode.INVALID_PRICE),
        ({"price": "1000000.01"}, ErrorCode.INVALID_PRICE),
        ({"price": Decimal("1e999999999")}, ErrorCode.INVALID_PRICE),
        ({"price": "9" * 60}, ErrorCode.INVALID_PRICE),
        ({"price": None}, ErrorCode.INVALID_PRICE),
        ({"price": True}, ErrorCode.INVALID_PRICE),
        ({"quantity": "0.001"}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": "0"}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": "1000000.01"}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": None}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": []}, ErrorCode.INVALID_QUANTITY),
        ({"post_only": "yes"}, ErrorCode.INVALID_ORDER),
        ({"self_trade_prevention": "none"}, ErrorCode.INVALID_ORDER),
        ({"client_order_id": "x" * 37}, ErrorCode.INVALID_CLIENT_ORDER_ID),
        ({"client_order_id": ""}, ErrorCode.INVALID_CLIENT_ORDER_ID),
        ({"colour": "red"}, ErrorCode.INVALID_REQUEST),
        ({"symbol": "BTC_USDT"}, ErrorCode.INVALID_REQUEST),  # market and symbol disagree
        ({"type": "market"}, ErrorCode.INVALID_PRICE),  # market orders take no price
        ({"quote_quantity": "5"}, ErrorCode.INVALID_ORDER),  # only for market buys
        ({"post_only": True, "time_in_force": "IOC"}, ErrorCode.INVALID_ORDER),
    ],
)
def test_bad_orders_are_refused_precisely(fields, code):
    assert refused(order, **fields) is code


def test_json_bodies():
    assert parse_json(b'{"a": 1.10}') == {"a": Decimal("1.10")}
    for raw in (b"", b"{", b"\xff", b"[1,]", b"1" * 5000):
        assert refused(parse_json, raw) is ErrorCode.INVALID_REQUEST
    assert refused(parse_order, CONFIG, [1], user_id="1") is ErrorCode.INVALID_REQUEST


def test_limits_markets_and_times():
    assert limit_param({}, default=100, maximum=5000) == 100
    assert limit_param({"limit": "5000"}, default=100, maximum=5000) == 5000
    for bad in ("0", "5001", "-1", "x", "1.5", ""):
        assert (
            refused(limit_param, {"limit": bad}, default=1, maximum=5000) is ErrorCode.INVALID_LIMIT
        )
    assert market_of(CONFIG, {"symbol": "TATA_INR"}).symbol == "TATA_INR"
    assert market_of(CONFIG, {}, required=False) is None
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    assert time_param({"t": "2024-01-01T00:00:00Z"}, "t") == moment
    assert time_param({"t": "1704067200"}, "t") == moment
    assert time_param({"t": "2024-01-01T05:30:00+05:30"}, "t") == moment
    for bad in ("yesterday", "2024-13-01T00:00:00Z", "1e9", "99999999999999"):
        assert refused(time_param, {"t": bad}, "t") is ErrorCode.INVALID_TIME


def test_transfers():
    body = {"user_id": "1", "asset": "INR", "amount": "1000.5"}
    assert parse_transfer(CONFIG, body, withdraw=False) == Deposit("1", "INR", 10_005_000)
    assert parse_transfer(CONFIG, body, withdraw=True) == Withdraw("1", "INR", 10_005_000)
    assert refused(parse_transfer, CONFIG, {**body, "asset": "XYZ"}, withdraw=False) is (
        ErrorCode.INVALID_ASSET
    )
    for amount in ("0", "1.00001", "-5", 1.5):
        bad = {**body, "amount": amount}
        assert refused(parse_transfer, CONFIG, bad, withdraw=False) is ErrorCode.INVALID_AMOUNT


def test_signing_round_trip_and_refusals():
    secret = "s3cret"
    body = b'{"market":"TATA_INR"}'
    sig = signing.sign_request(secret, "1700000000000", "POST", "/api/v1/order", body)
    assert sig == signing.sign(secret, b'1700000000000POST/api/v1/order{"market":"TATA_INR"}')
    ok = dict(
        timestamp="1700000000000",
        signature=sig,
        method="POST",
        target="/api/v1/order",
        body=body,
        now_ms=1_700_000_004_000,
    )
    signing.verify_request(secret, **ok)
    cases = [
        ({"body": b"{}"}, "signature"),  # replay with another body
        ({"signature": "0" * 64}, "signature"),
        ({"now_ms": 1_700_000_005_001}, "timestamp"),  # stale
        ({"timestamp": "abc"}, "timestamp"),
        ({"recv_window": "0"}, "recv_window"),
        ({"recv_window": "60001"}, "recv_window"),
    ]
    for change, field in cases:
        with pytest.raises(signing.HmacSignatureError) as info:
            signing.verify_request(secret, **{**ok, **change})
        assert info.value.field == field
    signing.verify_request(secret, **{**ok, "now_ms": 1_700_000_009_000, "recv_window": "10000"})


def test_token_bucket_with_an_injected_clock():
    limiter = TokenBucketLimiter(rate_per_s=2.0, burst=3.0)
    assert [limiter.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", 0.0) == pytest.approx(0.5)
    assert limiter.take("other", 0.0) == 0.0  # buckets are per key
    assert limiter.take("k", 0.5) == 0.0  # one token back after 0.5 s
    assert limiter.take("k", 0.5, cost=2) == pytest.approx(1.0)
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(1.5) == "2"
    assert TokenBucketLimiter(0, 0).take("k", 0.0) == 0.0  # disabled


def test_admin_token():
    assert refused(check_admin, "tok", None) is ErrorCode.UNAUTHORIZED
    assert refused(check_admin, "tok", "nope") is ErrorCode.FORBIDDEN
    assert refused(check_admin, "", "anything") is ErrorCode.FORBIDDEN
    check_admin("tok", "tok")


def test_secrets_are_derived_not_stored_and_ed25519_keys_checked():
    assert derive_secret(b"k1", "key") != derive_secret(b"k2", "key")
    assert len(derive_secret(b"k1", "key")) == 64
    raw = bytes(range(32))
    import base64

    assert check_ed25519_key(base64.b64encode(raw).decode()) == base64.b64encode(raw).decode()
    for bad in ("abc", base64.b64encode(raw[:31]).decode(), 5, "!!!!"):
        assert refused(check_ed25519_key, bad) is ErrorCode.INVALID_REQUEST
