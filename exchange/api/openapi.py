"""The OpenAPI 3.0 document of the REST API, served at ``GET /api/v1/openapi.json``.

Written by hand from the contract (a generator would need the handlers to declare their shapes
twice over); the schemathesis test in ``tests/api`` checks every response against it.
"""

from __future__ import annotations

from typing import Any

from exchange.markets import MarketConfig
from exchange.surfaces.limits import MAX_BATCH_ORDERS
from exchange.surfaces.params import INTERVALS

DECIMAL = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "100.5"}
SIGNED_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
NULLABLE_DECIMAL = {**DECIMAL, "nullable": True}
NUMBER_IN = {"anyOf": [{"type": "string"}, {"type": "number"}]}
ID = {"type": "string", "pattern": r"^[0-9]+$"}
# An id a cancel or lookup names: any string; one that names no order of the caller is a 404.
ORDER_REFERENCE = {
    "type": "string",
    "description": "any string; one that names no order of the caller → 404 ORDER_NOT_FOUND",
}
MS = {"type": "integer", "description": "milliseconds since the epoch"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props}
    out["required"] = list(props) if required is None else required
    out.update(extra)
    return out


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


ORDER_FIELDS = {
    "order_id": ID,
    "client_order_id": {"type": "string", "nullable": True},
    "market": {"type": "string"},
    "side": {"type": "string", "enum": ["buy", "sell"]},
    "type": {"type": "string", "enum": ["limit", "market"]},
    "price": NULLABLE_DECIMAL,
    "quantity": NULLABLE_DECIMAL,
    "executed_quantity": DECIMAL,
    "executed_quote_quantity": DECIMAL,
    "status": {
        "type": "string",
        "enum": [
            "new",
            "partially_filled",
            "filled",
            "cancelled",
            "expired",
            "rejected",
            "trigger_pending",
        ],
    },
    "time_in_force": {"type": "string", "enum": ["GTC", "IOC", "FOK"]},
    "post_only": {"type": "boolean"},
    "created_at": MS,
    "trigger_price": {
        **NULLABLE_DECIMAL,
        "description": "a stop order's trigger price; null on other orders",
    },
    "triggered_at": {**MS, "nullable": True, "description": "when the stop triggered, or null"},
}
FILL = obj({"trade_id": {"type": "integer"}, "price": DECIMAL, "quantity": DECIMAL})

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": obj({"code": {"type": "string"}, "message": {"type": "string"}})}),
    "Market": obj(
        {
            "market": {"type": "string"},
            "base": {"type": "string"},
            "quote": {"type": "string"},
            "tick_size": DECIMAL,
            "lot_size": DECIMAL,
            "min_quantity": DECIMAL,
        }
    ),
    "Depth": obj(
        {
            "market": {"type": "string"},
            "bids": array(array(DECIMAL)),
            "asks": array(array(DECIMAL)),
            "last_update_id": {"type": "integer"},
            "timestamp": MS,
        }
    ),
    "Trade": obj(
        {
            "id": {"type": "integer"},
            "market": {"type": "string"},
            "price": DECIMAL,
            "quantity": DECIMAL,
            "quote_quantity": DECIMAL,
            "is_buyer_maker": {"type": "boolean"},
            "timestamp": MS,
        }
    ),
    "Kline": obj(
        {
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "open": DECIMAL,
            "high": DECIMAL,
            "low": DECIMAL,
            "close": DECIMAL,
            "volume": DECIMAL,
            "quote_volume": DECIMAL,
            "trades": {"type": "integer"},
        }
    ),
    "Ticker": obj(
        {
            "market": {"type": "string"},
            "first_price": NULLABLE_DECIMAL,
            "last_price": NULLABLE_DECIMAL,
            "price_change": {**SIGNED_DECIMAL, "nullable": True},
            "price_change_percent": {**SIGNED_DECIMAL, "nullable": True},
            "high": NULLABLE_DECIMAL,
            "low": NULLABLE_DECIMAL,
            "volume": DECIMAL,
            "quote_volume": DECIMAL,
            "trades": {"type": "integer"},
        }
    ),
    "Order": obj({**ORDER_FIELDS, "fills": array(FILL)}, required=[*ORDER_FIELDS, "fills"]),
    "ClosedOrder": obj(ORDER_FIELDS),
    "Fill": obj(
        {
            "trade_id": {"type": "integer"},
            "order_id": ID,
            "market": {"type": "string"},
            "side": {"type": "string", "enum": ["buy", "sell"]},
            "price": DECIMAL,
            "quantity": DECIMAL,
            "quote_quantity": DECIMAL,
            "is_maker": {"type": "boolean"},
            "timestamp": MS,
        }
    ),
    "Balances": {
        "type": "object",
        "additionalProperties": obj({"available": DECIMAL, "locked": DECIMAL}),
    },
    "TransferDone": {
        "type": "object",
        "description": "the user's balances after the transfer, and its id",
        "properties": {"transfer_id": {"type": "string", "pattern": "^[0-9]+$"}},
        "required": ["transfer_id"],
        "additionalProperties": obj({"available": DECIMAL, "locked": DECIMAL}),
    },
    "LedgerEntry": obj(
        {
            "id": {"type": "integer"},
            "asset": {"type": "string"},
            "kind": {"type": "string", "enum": ["deposit", "withdrawal", "trade", "fee"]},
            "amount": SIGNED_DECIMAL | {"description": "negative when the balance fell"},
            "balance": DECIMAL | {"description": "available + locked after the movement"},
            "ref": {"type": "string", "description": "the trade id or the transfer id"},
            "timestamp": MS,
        }
    ),
    "AuditPart": {
        "type": "object",
        "nullable": True,
        "properties": {
            "seq": {"type": "integer"},
            "assets": {
                "type": "object",
                "additionalProperties": obj(
                    {
                        "deposits": DECIMAL,
                        "withdrawals": DECIMAL,
                        "users": DECIMAL,
                        "fees": DECIMAL,
                        "difference": SIGNED_DECIMAL,
                    }
                ),
            },
        },
        "required": ["seq", "assets"],
    },
    "Audit": obj(
        {
            "engine": ref("AuditPart"),
            "history": ref("AuditPart"),
            "ok": {"type": "boolean"},
            "problems": array({"type": "string"}),
        }
    ),
    "OrderRequest": obj(
        {
            "market": {"type": "string", "example": "TATA_INR"},
            "symbol": {"type": "string"},
            "side": {"type": "string", "enum": ["buy", "sell"]},
            "type": {"type": "string", "enum": ["limit", "market"]},
            "price": NUMBER_IN,
            "quantity": NUMBER_IN,
            "quote_quantity": NUMBER_IN,
            "time_in_force": {"type": "string", "enum": ["GTC", "IOC", "FOK"]},
            "post_only": {"type": "boolean"},
            "trigger_price": {
                **NUMBER_IN,
                "description": (
                    "makes a stop order: it waits (trigger_pending) until a trade prints at or"
                    " through this price, from the side of the last trade price at placement;"
                    " equal to the last trade price, or no trade yet → 400 INVALID_PRICE;"
                    " post-only and FOK take none (INVALID_ORDER)"
                ),
            },
            "client_order_id": {"type": "string", "minLength": 1, "maxLength": 36},
            "self_trade_prevention": {
                "type": "string",
                "enum": ["cancel_taker", "cancel_maker", "cancel_both"],
            },
            "user_id": {"type": "string", "description": "EXCHANGE_AUTH=dev only"},
        },
        required=["side", "quantity"],
        additionalProperties=False,
    ),
    "CancelRequest": obj(
        {
            "market": {"type": "string"},
            "symbol": {"type": "string"},
            "order_id": ORDER_REFERENCE,
            "client_order_id": ORDER_REFERENCE,
            "user_id": {"type": "string"},
        },
        required=[],
        additionalProperties=False,
    ),
    "Transfer": obj(
        {"user_id": {"type": "string"}, "asset": {"type": "string"}, "amount": NUMBER_IN},
        additionalProperties=False,
    ),
    "NewUser": obj(
        {
            "user_id": {"type": "string"},
            "api_key": {"type": "string"},
            "api_secret": {"type": "string"},
            "ed25519_public_key": {"type": "string"},
        },
        required=["user_id", "api_key", "api_secret"],
    ),
    "Ed25519Key": obj({"user_id": {"type": "string"}, "ed25519_public_key": {"type": "string"}}),
}

ERRORS = {
    "400": "invalid input",
    "401": "unauthenticated",
    "403": "forbidden",
    "404": "not found",
    "409": "conflict (the key is in use)",
    "429": "rate limited (see Retry-After)",
    "503": "a needed service is down",
    "504": "the engine did not answer in time",
}


def _responses(ok: dict, codes: tuple[str, ...]) -> dict:
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ok}}}
    }
    for code in codes:
        out[code] = {
            "description": ERRORS[code],
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return out


def _query(name: str, schema: dict, required: bool = False, description: str = "") -> dict:
    out = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


def _limit(maximum: int) -> dict:
    return _query("limit", {"type": "integer", "minimum": 1, "maximum": maximum})


def _markets(config: MarketConfig) -> dict:
    return {"type": "string", "enum": sorted(config.markets)}


PUBLIC = ("400", "429", "503", "504")
PRIVATE = ("400", "401", "429", "503", "504")
ADMIN = ("400", "401", "403", "404", "503", "504")


def _op(summary: str, ok: dict, codes: tuple[str, ...], params=(), body=None, security=None):
    op: dict[str, Any] = {"summary": summary, "responses": _responses(ok, codes)}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if security is not None:
        op["security"] = security
    return op


def document(config: MarketConfig) -> dict[str, Any]:
    """The whole OpenAPI document (markets enumerated from the configuration)."""
    market = _query("market", _markets(config), description="or `symbol`")
    market_required = _query("market", _markets(config), required=True, description="or `symbol`")
    user = _query("user_id", {"type": "string"}, description="EXCHANGE_AUTH=dev only")
    signed = [{"apiKey": [], "timestamp": [], "signature": []}]
    admin = [{"adminToken": []}]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "exchange REST API",
            "version": "1.3",
            "description": "Every price, quantity and amount is an exact decimal string.",
        },
        "paths": {
            "/api/v1/markets": {"get": _op("Markets", array(ref("Market")), PUBLIC)},
            "/api/v1/config": {
                "get": _op(
                    "Where the trading page finds the WebSocket server, and the auth mode",
                    obj(
                        {
                            "ws_url": {"type": "string"},
                            "ws_port": {"type": "integer"},
                            "auth": {"type": "string", "enum": ["apikey", "dev"]},
                        }
                    ),
                    PUBLIC,
                )
            },
            "/api/v1/depth": {
                "get": _op(
                    "Order book depth", ref("Depth"), PUBLIC, [market_required, _limit(5000)]
                )
            },
            "/api/v1/trades": {
                "get": _op(
                    "Recent trades, newest first",
                    array(ref("Trade")),
                    PUBLIC,
                    [market_required, _limit(1000)],
                )
            },
            "/api/v1/klines": {
                "get": _op(
                    "Candles",
                    array(ref("Kline")),
                    PUBLIC,
                    [
                        market_required,
                        _query("interval", {"type": "string", "enum": list(INTERVALS)}, True),
                        _query("start_time", {"type": "string"}, description="ISO-8601 or epoch s"),
                        _query("end_time", {"type": "string"}, description="ISO-8601 or epoch s"),
                        _limit(1000),
                    ],
                )
            },
            "/api/v1/tickers": {"get": _op("24h tickers", array(ref("Ticker")), PUBLIC)},
            "/api/v1/ticker": {"get": _op("24h ticker", ref("Ticker"), PUBLIC, [market_required])},
            "/api/v1/order": {
                "post": _op(
                    "Place an order", ref("Order"), PRIVATE, [user], ref("OrderRequest"), signed
                ),
                "delete": _op(
                    "Cancel an order",
                    ref("Order"),
                    (*PRIVATE, "404"),
                    [user],
                    ref("CancelRequest"),
                    signed,
                ),
                "get": _op(
                    "One order, open or closed",
                    {"anyOf": [ref("Order"), ref("ClosedOrder")]},
                    (*PRIVATE, "404"),
                    [
                        _query("order_id", ORDER_REFERENCE),
                        _query("client_order_id", ORDER_REFERENCE),
                        user,
                    ],
                    security=signed,
                ),
            },
            "/api/v1/orders": {
                "post": _op(
                    f"Place up to {MAX_BATCH_ORDERS} orders",
                    array({"anyOf": [ref("Order"), ref("Error")]}),
                    PRIVATE,
                    [user],
                    array(ref("OrderRequest")) | {"minItems": 1, "maxItems": MAX_BATCH_ORDERS},
                    signed,
                ),
                "delete": _op(
                    "Cancel every open order",
                    array(ref("Order")),
                    PRIVATE,
                    [market, user],
                    security=signed,
                ),
            },
            "/api/v1/order/open": {
                "get": _op(
                    "Open orders", array(ref("Order")), PRIVATE, [market, user], security=signed
                )
            },
            "/api/v1/orders/history": {
                "get": _op(
                    "Closed orders, newest first",
                    array(ref("ClosedOrder")),
                    PRIVATE,
                    [market, _limit(1000), user],
                    security=signed,
                )
            },
            "/api/v1/fills": {
                "get": _op(
                    "The caller's trades, newest first",
                    array(ref("Fill")),
                    PRIVATE,
                    [market, _limit(1000), user],
                    security=signed,
                )
            },
            "/api/v1/balances": {
                "get": _op("Balances", ref("Balances"), PRIVATE, [user], security=signed)
            },
            "/api/v1/ledger": {
                "get": _op(
                    "The caller's balance movements, newest first",
                    array(ref("LedgerEntry")),
                    PRIVATE,
                    [
                        _query("asset", {"type": "string", "enum": sorted(config.assets)}),
                        _limit(1000),
                        user,
                    ],
                    security=signed,
                )
            },
            "/api/v1/admin/audit": {
                "get": _op(
                    "Every unit accounted for, per asset, in the engine and in the history",
                    ref("Audit"),
                    ("401", "403", "503", "504"),
                    security=admin,
                )
            },
            "/api/v1/admin/users": {
                "post": _op(
                    "Create a new, empty user (an id never used before) with an API key",
                    ref("NewUser"),
                    ("400", "401", "403", "409", "503", "504"),
                    body=obj(
                        {"ed25519_public_key": {"type": "string"}},
                        required=[],
                        additionalProperties=False,
                    ),
                    security=admin,
                )
            },
            "/api/v1/admin/keys": {
                "post": _op(
                    "Attach an ED25519 key to a user",
                    ref("Ed25519Key"),
                    ("400", "401", "403", "404", "503"),
                    body=ref("Ed25519Key") | {"additionalProperties": False},
                    security=admin,
                )
            },
            "/api/v1/admin/deposit": {
                "post": _op(
                    "Deposit", ref("TransferDone"), ADMIN, body=ref("Transfer"), security=admin
                )
            },
            "/api/v1/admin/withdraw": {
                "post": _op(
                    "Withdraw", ref("TransferDone"), ADMIN, body=ref("Transfer"), security=admin
                )
            },
            "/healthz": {"get": _op("Liveness", obj({"status": {"type": "string"}}), ())},
            "/readyz": {
                "get": _op(
                    "Readiness (Redis, engine, PostgreSQL)",
                    obj({"status": {"type": "string"}, "checks": {"type": "object"}}),
                    ("503",),
                )
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-TIMESTAMP"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-SIGNATURE"},
                "adminToken": {"type": "apiKey", "in": "header", "name": "X-ADMIN-TOKEN"},
            },
        },
    }
