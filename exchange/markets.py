"""Markets and assets, loaded from TOML configuration.

The packaged ``markets.toml`` ships ``TATA_INR``, ``BTC_USDT`` and ``ETH_USDT``; the setting
``EXCHANGE_MARKETS_FILE`` (:mod:`exchange.settings`) names another file. Each :class:`Market`
precomputes the integer factors the engine needs, so matching never touches a ``Decimal``.
"""

from __future__ import annotations

import functools
import os
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path

import attrs

from exchange.errors import ConfigError
from exchange.money import MoneyError, format_units, parse_decimal, step_decimals, to_steps


@attrs.frozen
class Asset:
    """A currency or token; balances are integers of ``10**-decimals``."""

    name: str
    decimals: int

    def to_units(self, amount: Decimal) -> int:
        """Raises MoneyError if ``amount`` has more decimals than the asset."""
        return to_steps(amount, Decimal(1).scaleb(-self.decimals))

    def format(self, units: int) -> str:
        return format_units(units, self.decimals)


@attrs.frozen
class Market:
    """A ``BASE_QUOTE`` market with its steps, limits and fees.

    ``base_per_lot`` is the base minor units in one lot; ``quote_per_tick_lot`` the quote minor
    units that one lot costs per tick of price. A trade of ``q`` lots at ``p`` ticks moves
    ``q * base_per_lot`` base and ``p * q * quote_per_tick_lot`` quote.
    """

    symbol: str
    base: Asset
    quote: Asset
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    max_price: Decimal
    max_quantity: Decimal
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    base_per_lot: int = attrs.field(init=False)
    quote_per_tick_lot: int = attrs.field(init=False)
    min_lots: int = attrs.field(init=False)
    max_ticks: int = attrs.field(init=False)
    max_lots: int = attrs.field(init=False)
    price_decimals: int = attrs.field(init=False)
    quantity_decimals: int = attrs.field(init=False)
    # Rendered prices and quantities: the engine renders the same few hundred levels and sizes
    # over and over (every order, trade and depth event). Bounded; not part of equality.
    _price_texts: dict[int, str] = attrs.field(init=False, factory=dict, eq=False, repr=False)
    _quantity_texts: dict[int, str] = attrs.field(init=False, factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        try:
            derived = {
                "base_per_lot": self.base.to_units(self.lot_size),
                "quote_per_tick_lot": self.quote.to_units(self.tick_size * self.lot_size),
                "min_lots": to_steps(self.min_quantity, self.lot_size),
                "max_ticks": to_steps(self.max_price, self.tick_size),
                "max_lots": to_steps(self.max_quantity, self.lot_size),
            }
        except MoneyError as exc:
            raise ConfigError(
                f"market {self.symbol}: steps do not fit its assets ({exc})"
            ) from None
        if min(derived.values()) <= 0:
            raise ConfigError(f"market {self.symbol}: steps and limits must be positive")
        derived["price_decimals"] = step_decimals(self.tick_size)
        derived["quantity_decimals"] = step_decimals(self.lot_size)
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def assets(self) -> tuple[Asset, Asset]:
        return (self.base, self.quote)

    def format_price(self, ticks: int) -> str:
        text = self._price_texts.get(ticks)
        if text is None:
            text = format_units(ticks * _step_units(self.tick_size), self.price_decimals)
            _remember(self._price_texts, ticks, text)
        return text

    def format_quantity(self, lots: int) -> str:
        text = self._quantity_texts.get(lots)
        if text is None:
            text = format_units(lots * _step_units(self.lot_size), self.quantity_decimals)
            _remember(self._quantity_texts, lots, text)
        return text

    def base_units(self, lots: int) -> int:
        return lots * self.base_per_lot

    def quote_units(self, ticks: int, lots: int) -> int:
        return ticks * lots * self.quote_per_tick_lot


FORMAT_CACHE_SIZE = 4_096  # per market and kind; emptied when full (prices drift, sizes repeat)


def _remember(cache: dict[int, str], key: int, text: str) -> None:
    if len(cache) >= FORMAT_CACHE_SIZE:
        cache.clear()
    cache[key] = text


@functools.cache  # on every price and quantity the engine renders: Decimal math is slow
def _step_units(step: Decimal) -> int:
    """A step written as an integer of its own last decimal place (``0.05`` → 5)."""
    return int(step.scaleb(step_decimals(step)))


@attrs.frozen
class MarketConfig:
    """Every asset and market of an installation."""

    assets: dict[str, Asset]
    markets: dict[str, Market]

    def market(self, symbol: str) -> Market | None:
        return self.markets.get(symbol)


def parse_config(data: dict) -> MarketConfig:
    """Build a :class:`MarketConfig` from parsed TOML. Raises ConfigError."""
    try:
        assets = {name: Asset(name, int(decimals)) for name, decimals in data["assets"].items()}
        markets: dict[str, Market] = {}
        for entry in data["markets"]:
            symbol = entry["symbol"]
            if symbol != f"{entry['base']}_{entry['quote']}":
                raise ConfigError(f"market {symbol}: symbol must be BASE_QUOTE")
            markets[symbol] = Market(
                symbol=symbol,
                base=assets[entry["base"]],
                quote=assets[entry["quote"]],
                tick_size=parse_decimal(entry["tick_size"]),
                lot_size=parse_decimal(entry["lot_size"]),
                min_quantity=parse_decimal(entry["min_quantity"]),
                max_price=parse_decimal(entry["max_price"]),
                max_quantity=parse_decimal(entry["max_quantity"]),
                maker_fee_bps=int(entry.get("maker_fee_bps", 0)),
                taker_fee_bps=int(entry.get("taker_fee_bps", 0)),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid market configuration: {exc!r}") from None
    if not markets:
        raise ConfigError("no markets configured")
    return MarketConfig(assets=assets, markets=markets)


def load_config(path: str | os.PathLike | None = None) -> MarketConfig:
    """Load ``path`` (``Settings.markets_file``: ``EXCHANGE_MARKETS_FILE``), else the
    packaged ``markets.toml``."""
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("exchange").joinpath("markets.toml").read_text()
    return parse_config(tomllib.loads(text))
