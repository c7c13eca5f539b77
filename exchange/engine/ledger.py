"""Balances: available and locked integers per user and asset, and nothing about books.

Funds move only through the methods here, each of which keeps ``available >= 0`` and
``locked >= 0`` and conserves the total of every asset (deposits and withdrawals aside).
Every (user, asset) touched is remembered until :meth:`Ledger.take_changes`, which is how the
engine emits one ``BalanceChanged`` per changed balance per command.

Trading fees are taken from what a party receives and credited to :data:`FEE_ACCOUNT`; with the
default 0 bps nothing moves, and adding fees is a configuration change, not a code change.

Deposits and withdrawals are also summed per asset (``deposited``, ``withdrawn``): with the
balances they are the engine's half of the audit (:meth:`Ledger.audit`).
"""

from __future__ import annotations

from exchange.models import FEE_ACCOUNT, AssetTotals, Balance, BalanceChanged

__all__ = ["FEE_ACCOUNT", "Ledger"]


class Ledger:
    """``balances[user][asset] == [available, locked]``."""

    def __init__(self) -> None:
        self.balances: dict[str, dict[str, list[int]]] = {}
        self._touched: dict[tuple[str, str], None] = {}
        self.deposited: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}

    def _entry(self, user: str, asset: str) -> list[int]:
        assets = self.balances.get(user)
        if assets is None:
            assets = self.balances[user] = {}
        entry = assets.get(asset)
        if entry is None:
            entry = assets[asset] = [0, 0]
        self._touched[(user, asset)] = None
        return entry

    def balance(self, user: str, asset: str) -> Balance:
        entry = self.balances.get(user, {}).get(asset)
        return Balance(entry[0], entry[1]) if entry else Balance(0, 0)

    def available(self, user: str, asset: str) -> int:
        entry = self.balances.get(user, {}).get(asset)
        return entry[0] if entry else 0

    def deposit(self, user: str, asset: str, amount: int) -> None:
        self._entry(user, asset)[0] += amount
        self.deposited[asset] = self.deposited.get(asset, 0) + amount

    def withdraw(self, user: str, asset: str, amount: int) -> bool:
        """Take ``amount`` out of available; False (and no change) if there is not enough."""
        if self.available(user, asset) < amount:
            return False
        self._entry(user, asset)[0] -= amount
        self.withdrawn[asset] = self.withdrawn.get(asset, 0) + amount
        return True

    def hold(self, user: str, asset: str, amount: int) -> bool:
        """Move ``amount`` from available to locked; False (and no change) if not enough."""
        if self.available(user, asset) < amount:
            return False
        entry = self._entry(user, asset)
        entry[0] -= amount
        entry[1] += amount
        return True

    def release(self, user: str, asset: str, amount: int) -> None:
        """Move ``amount`` from locked back to available."""
        if amount:
            entry = self._entry(user, asset)
            assert entry[1] >= amount, "releasing more than is locked"
            entry[1] -= amount
            entry[0] += amount

    def pay(
        self, payer: str, asset: str, from_locked: int, amount: int, payee: str, fee: int
    ) -> None:
        """Settle one leg of a trade.

        The payer's lock shrinks by ``from_locked``; ``amount`` of it goes to the payee (less
        ``fee``, which goes to the fee account) and the rest returns to the payer's available
        (a limit buy that traded below its price gets the difference back).
        """
        entry = self._entry(payer, asset)
        assert entry[1] >= from_locked >= amount, "paying more than is locked"
        entry[1] -= from_locked
        entry[0] += from_locked - amount
        self._entry(payee, asset)[0] += amount - fee
        if fee:
            self._entry(FEE_ACCOUNT, asset)[0] += fee

    def take_changes(self) -> list[BalanceChanged]:
        """One event per balance touched since the last call."""
        changes = [
            BalanceChanged(user, asset, *self.balances[user][asset])
            for user, asset in self._touched
        ]
        self._touched.clear()
        return changes

    def totals(self) -> dict[str, int]:
        """Available + locked of every asset over all users (for conservation checks)."""
        out: dict[str, int] = {}
        for assets in self.balances.values():
            for asset, (available, locked) in assets.items():
                out[asset] = out.get(asset, 0) + available + locked
        return out

    def audit(self, assets: list[str]) -> dict[str, AssetTotals]:
        """Per asset: deposited, withdrawn, held by users (available + locked) and by the fee
        account, summed from the balances themselves (a lost or created unit shows)."""
        users = dict.fromkeys(assets, 0)
        fees = dict.fromkeys(assets, 0)
        for user, held in self.balances.items():
            into = fees if user == FEE_ACCOUNT else users
            for asset, (available, locked) in held.items():
                into[asset] = into.get(asset, 0) + available + locked
        return {
            asset: AssetTotals(
                self.deposited.get(asset, 0),
                self.withdrawn.get(asset, 0),
                users.get(asset, 0),
                fees.get(asset, 0),
            )
            for asset in sorted({*users, *fees, *self.deposited, *self.withdrawn})
        }
