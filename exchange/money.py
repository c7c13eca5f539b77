"""Exact money: decimal text at the edges, integers inside.

Inside the engine a price is an integer number of ticks, a quantity an integer number of lots and
a balance an integer number of an asset's minor units. This module is the only bridge: it reads
decimals exactly (strings, integers or ``Decimal`` values produced by a JSON parser configured
with ``parse_float=Decimal``; never a binary float) and formats integers back without exponent
or trailing zeros.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

# Wide enough for any value a market accepts; anything longer is refused as oversized rather
# than silently rounded.
MAX_DIGITS = 40
_CONTEXT = decimal.Context(prec=MAX_DIGITS * 2, traps=[decimal.Inexact, decimal.InvalidOperation])
_DECIMAL_TEXT = re.compile(r"[0-9]{1,40}(\.[0-9]{1,40})?")


class MoneyError(ValueError):
    """A value is not an exact, finite, well-formed decimal of acceptable size."""


def parse_decimal(value: object) -> Decimal:
    """Read ``value`` as an exact non-negative decimal.

    Accepts ``"100.5"``, ``100`` and ``Decimal("100.5")``; refuses floats, booleans, signs,
    exponents, NaN/Infinity and more than 40 digits on either side of the point.

    Raises:
        MoneyError: with a message fit for a client.
    """
    if isinstance(value, (bool, float)):
        raise MoneyError("must be a decimal string or an exact number")
    if isinstance(value, int):
        if value < 0:
            raise MoneyError("must not be negative")
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise MoneyError("must be finite")
        if value.is_signed() and value != 0:
            raise MoneyError("must not be negative")
        text = format(abs(value), "f")
    elif isinstance(value, str):
        text = value
    else:
        raise MoneyError("must be a decimal string")
    if not _DECIMAL_TEXT.fullmatch(text):
        raise MoneyError('must be a plain decimal like "100.5"')
    return Decimal(text)


def to_steps(value: Decimal, step: Decimal) -> int:
    """The integer number of ``step`` in ``value``.

    Raises:
        MoneyError: if ``value`` is not a whole multiple of ``step``.
    """
    try:
        steps = _CONTEXT.divide(value, step)
        return int(_CONTEXT.to_integral_exact(steps))
    except (decimal.Inexact, decimal.InvalidOperation):
        raise MoneyError(f"must be a multiple of {format_decimal(step)}") from None


def format_decimal(value: Decimal) -> str:
    """``Decimal`` → text with no exponent and no trailing zeros (``"100.5"``, ``"0"``)."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_units(units: int, decimals: int) -> str:
    """An integer count of ``10**-decimals`` → exact decimal text (``12345, 2`` → ``"123.45"``)."""
    if decimals == 0 or units == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def step_decimals(step: Decimal) -> int:
    """Digits after the point needed to write multiples of ``step`` (``0.05`` → 2)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)
