"""The one converter: records ⇄ bytes for everything that travels between programs.

Messages on Redis are JSON objects tagged with their record's class name (``{"record":
"PlaceOrder", ...}``); integers stay integers, enums travel by value and ``Decimal`` as a string.
orjson writes and reads them; cattrs builds the typed records back, validating enums and types.
Public JSON (the contract's decimal strings) is :mod:`exchange.views`' job, not this module's.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

import cattrs
import orjson

from exchange import models
from exchange.models import Balance, OrderView

# Without detailed validation a bad message raises one plain error instead of an exception group
# that names every field: a fraction of the cost, and a malformed message is rejected either way.
converter = cattrs.Converter(detailed_validation=False)
converter.register_unstructure_hook(Decimal, str)
converter.register_structure_hook(Decimal, lambda value, _: Decimal(str(value)))


def _exactly(kind: type) -> Any:
    """A structure hook for ``kind`` and its subclasses (the StrEnums are strs): a value of
    exactly ``kind`` is passed through, or made a member of the subclass; any other is refused
    (cattrs' default would coerce: ``int(5.5)`` is 5, ``str(5)`` is "5")."""

    def structure(value: Any, cls: type) -> Any:
        if type(value) is kind:
            return value if cls is kind else cls(value)
        if type(value) is cls:  # a member already (a message that was never serialised)
            return value
        raise TypeError(f"expected {cls.__name__}, got {type(value).__name__}")

    return structure


for _kind in (int, str, bool):
    converter.register_structure_hook(_kind, _exactly(_kind))

_RECORDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        models.PlaceOrder,
        models.CancelOrder,
        models.CancelAll,
        models.Deposit,
        models.Withdraw,
        models.CreateUser,
        models.GetDepth,
        models.GetOpenOrders,
        models.GetOrder,
        models.GetBalances,
        models.GetAudit,
        models.Transferred,
        models.LedgerAudit,
        models.FundsTransferred,
        models.Rejection,
        models.OrderView,
        models.Depth,
        models.UserCreated,
        models.OrderUpdated,
        models.TradeExecuted,
        models.BalanceChanged,
        models.DepthChanged,
    )
}


# The converter's hooks, looked up once per type instead of dispatched on every call.
_UNSTRUCTURE: dict[type, Any] = {
    cls: converter.get_unstructure_hook(cls) for cls in _RECORDS.values()
}
_STRUCTURE: dict[str, Any] = {
    name: functools.partial(converter.get_structure_hook(cls), _=cls)
    for name, cls in _RECORDS.items()
}
_STRUCTURE_VIEWS = converter.get_structure_hook(list[OrderView])
_STRUCTURE_BALANCES = converter.get_structure_hook(dict[str, Balance])
_UNSTRUCTURE_VIEW = _UNSTRUCTURE[OrderView]
_UNSTRUCTURE_BALANCES = converter.get_unstructure_hook(dict[str, Balance])


def to_message(record: Any) -> dict:
    """A record (or a list of OrderViews, or a balances dict) → a JSON-ready tagged dict."""
    if isinstance(record, list):
        return {"record": "OrderViews", "items": [_UNSTRUCTURE_VIEW(item) for item in record]}
    if isinstance(record, dict):
        return {"record": "Balances", "items": _UNSTRUCTURE_BALANCES(record)}
    kind = type(record)
    data = _UNSTRUCTURE[kind](record)
    data["record"] = kind.__name__
    return data


def from_message(data: dict) -> Any:
    """Inverse of :func:`to_message`. Raises ``cattrs`` errors, TypeError, ValueError or
    KeyError on bad input."""
    kind = data.pop("record")
    if kind == "OrderViews":
        return _STRUCTURE_VIEWS(data["items"], list[OrderView])
    if kind == "Balances":
        return _STRUCTURE_BALANCES(data["items"], dict[str, Balance])
    return _STRUCTURE[kind](data)


def encode(record: Any) -> bytes:
    return orjson.dumps(to_message(record))


def decode(raw: bytes | str) -> Any:
    return from_message(orjson.loads(raw))


def event_message(event: models.Event, seq: int) -> dict:
    """An engine event as it travels on the events stream and the pub/sub channels: its tagged
    message (integers of ticks, lots and minor units) with the ``seq`` of the command that
    caused it. Consumers render decimals themselves, once, on the way out."""
    data = to_message(event)
    data["seq"] = seq
    return data


def decode_events(raw: bytes | str) -> list[Any]:
    """The event records of one published message (an array of :func:`event_message`).

    Raises ``cattrs`` errors, KeyError or ``orjson.JSONDecodeError`` on bad input.
    """
    return [from_message(data) for data in orjson.loads(raw)]


def dumps(data: Any) -> bytes:
    """Plain JSON out (orjson)."""
    return orjson.dumps(data)


def loads_exact(raw: bytes | str) -> Any:
    """Plain JSON in, reading every number with a fraction as an exact ``Decimal``.

    orjson would read ``100.1`` as a binary float; money must never pass through one.
    """
    return json.loads(raw, parse_float=Decimal)
