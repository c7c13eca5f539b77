"""The audit: is every unit of every asset accounted for, in the engine and in the history?

Two independent accounts of the same money, each per asset as an
:class:`~exchange.models.AssetTotals` (deposits, withdrawals, what the users hold, what the fee
account holds): the engine's, summed from its live balances (the ``GetAudit`` query), and the
history's, summed from PostgreSQL's ledger up to the engine sequence the history has reached.
Each must balance on its own (``difference`` 0), and once the history has reached the last
command that moved funds (the engine's ``moved_seq``), the two must be equal: a balance the
engine changed without a movement, or a ledger row changed behind the writer's back, shows in
one of them.

This module is pure: it compares and renders (the contract's JSON, the table ``just audit``
prints); the API's admin route gathers the two parts.
"""

from __future__ import annotations

from typing import Any

from exchange.markets import MarketConfig
from exchange.models import AssetTotals, LedgerAudit

_FIELDS = ("deposits", "withdrawals", "users", "fees")
_ZERO = AssetTotals(0, 0, 0, 0)


def problems(engine: LedgerAudit, history: LedgerAudit | None) -> list[str]:
    """What is off, one sentence each naming the asset (empty when everything balances).

    ``history`` is None when the history could not be read at all; it is behind when its
    ``seq`` has not reached the engine's last movement, and then cannot be compared.
    """
    found = [
        f"engine {asset}: difference {totals.difference}"
        for asset, totals in engine.assets.items()
        if totals.difference
    ]
    if history is None:
        return [*found, "history: no ledger to compare"]
    found += [
        f"history {asset}: difference {totals.difference}"
        for asset, totals in history.assets.items()
        if totals.difference
    ]
    if history.seq < engine.moved_seq:
        found.append(
            f"history: behind the engine (ledger at seq {history.seq}, "
            f"last movement at seq {engine.moved_seq})"
        )
        return found
    for asset in sorted({*engine.assets, *history.assets}):
        ours = engine.assets.get(asset, _ZERO)
        theirs = history.assets.get(asset, _ZERO)
        for field in _FIELDS:
            gap = getattr(theirs, field) - getattr(ours, field)
            if gap:
                found.append(f"history {asset}: {field} differs from the engine's by {gap}")
    return found


def _part_json(config: MarketConfig, part: LedgerAudit) -> dict[str, Any]:
    def text(asset: str, units: int) -> str:
        known = config.assets.get(asset)
        return known.format(units) if known is not None else str(units)

    return {
        "seq": part.seq,
        "assets": {
            asset: {
                **{field: text(asset, getattr(totals, field)) for field in _FIELDS},
                "difference": text(asset, totals.difference),
            }
            for asset, totals in sorted(part.assets.items())
        },
    }


def audit_json(
    config: MarketConfig, engine: LedgerAudit, history: LedgerAudit | None
) -> dict[str, Any]:
    """The contract's ``GET /api/v1/admin/audit`` reply (plus ``problems``, in words)."""
    found = problems(engine, history)
    return {
        "engine": _part_json(config, engine),
        "history": None if history is None else _part_json(config, history),
        "ok": not found,
        "problems": found,
    }


def audit_table(report: dict[str, Any]) -> str:
    """A readable table of an :func:`audit_json` report (what ``just audit`` prints)."""
    header = ("part", "seq", "asset", *_FIELDS, "difference")
    lines = [header]
    for name in ("engine", "history"):
        part = report.get(name)
        if part is None:
            lines.append((name, "-", "-", "-", "-", "-", "-", "-"))
            continue
        for asset, totals in part["assets"].items():
            lines.append(
                (name, str(part["seq"]), asset, *(totals[f] for f in (*_FIELDS, "difference")))
            )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    ]
    out.append("")
    out.append("ok" if report["ok"] else "NOT OK")
    out.extend(f"  - {problem}" for problem in report.get("problems", ()))
    return "\n".join(out)
