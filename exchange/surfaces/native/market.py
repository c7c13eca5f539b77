"""Public market data: markets, depth (engine), trades, klines and tickers (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from exchange.money import format_decimal
from exchange.surfaces import limits
from exchange.surfaces.http import Req
from exchange.surfaces.params import check_params, interval_param, market_of, time_param
from exchange.surfaces.state import Api
from exchange.views import depth_json

_MARKET = frozenset({"market", "symbol"})
_MARKET_LIMIT = _MARKET | {"limit"}
_KLINES = _MARKET_LIMIT | {"interval", "start_time", "end_time"}


def _market(api: Api, req: Req, allowed: frozenset[str]) -> str:
    check_params(req.params, allowed)
    market = market_of(api.config, req.params)
    assert market is not None
    return market.symbol


async def markets(api: Api, req: Req) -> Any:
    check_params(req.params, frozenset())
    return [
        {
            "market": market.symbol,
            "base": market.base.name,
            "quote": market.quote.name,
            "tick_size": format_decimal(market.tick_size),
            "lot_size": format_decimal(market.lot_size),
            "min_quantity": format_decimal(market.min_quantity),
        }
        for market in api.config.markets.values()
    ]


async def depth(api: Api, req: Req) -> Any:
    symbol = _market(api, req, _MARKET_LIMIT)
    limit = limits.DEPTH.of(req.params)
    return depth_json(api.config, await api.backend.depth(symbol, limit))


async def trades(api: Api, req: Req) -> Any:
    symbol = _market(api, req, _MARKET_LIMIT)
    limit = limits.TRADES.of(req.params)
    return await api.backend.history.recent_trades(symbol, limit)


async def klines(api: Api, req: Req) -> Any:
    symbol = _market(api, req, _KLINES)
    interval = interval_param(req.params)
    start_time = time_param(req.params, "start_time")
    end_time = time_param(req.params, "end_time")
    limit = limits.KLINES.of(req.params)
    return await api.backend.history.klines(symbol, interval, start_time, end_time, limit)


async def tickers(api: Api, req: Req) -> Any:
    check_params(req.params, frozenset())
    return await api.backend.history.tickers(list(api.config.markets))


async def ticker(api: Api, req: Req) -> Any:
    symbol = _market(api, req, _MARKET)
    (one,) = await api.backend.history.tickers([symbol])
    return one


ROUTES = [
    ("/api/v1/markets", "GET", markets),
    ("/api/v1/depth", "GET", depth),
    ("/api/v1/trades", "GET", trades),
    ("/api/v1/klines", "GET", klines),
    ("/api/v1/tickers", "GET", tickers),
    ("/api/v1/ticker", "GET", ticker),
]
