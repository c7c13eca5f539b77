"""What every API surface calls: commands to the engine, queries to the engine or PostgreSQL.

A surface (the native ``/api/v1`` routes, Backpack's ``/backpack``) parses its own request into
records of :mod:`exchange.models`, calls these methods, and renders the replies in its own
names. Nothing here knows about HTTP; the engine's rejections come back as
:class:`~exchange.errors.RequestError` so a surface only maps codes to its own.

State changes and live state (depth, open orders, balances, open or recently closed orders) come
from the engine through the gateway; history (trades, klines, tickers, closed orders, fills)
from PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import trio

from exchange.errors import ErrorCode, RequestError
from exchange.markets import MarketConfig
from exchange.models import (
    Balance,
    CancelAll,
    CancelOrder,
    Command,
    CreateUser,
    Deposit,
    Depth,
    GetAudit,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    LedgerAudit,
    OrderView,
    PlaceOrder,
    Query,
    Rejection,
    Reply,
    Transferred,
    UserCreated,
    Withdraw,
)


class Gateway(Protocol):
    """The engine service's client (``exchange.gateway``)."""

    async def submit(self, command: Command) -> Reply: ...
    async def submit_many(self, commands: list[Command]) -> list[Reply]: ...
    async def query(self, query: Query) -> Reply: ...
    def heartbeat(self) -> dict | None: ...


class History(Protocol):
    """PostgreSQL history reader (``exchange.history.queries``); returns contract-shaped dicts."""

    async def recent_trades(self, market: str, limit: int) -> list[dict]: ...
    async def klines(
        self,
        market: str,
        interval: str,
        start_time: datetime | None,
        end_time: datetime | None,
        limit: int,
    ) -> list[dict]: ...
    async def tickers(self, markets: list[str]) -> list[dict]: ...
    async def order_history(self, user_id: str, market: str | None, limit: int) -> list[dict]: ...
    async def fills(self, user_id: str, market: str | None, limit: int) -> list[dict]: ...
    async def order(
        self, user_id: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> dict | None: ...
    async def ping(self) -> bool: ...
    # the read replica as last checked (exchange.history.replica_lag.ReplicaState), or None
    @property
    def replica_state(self) -> Any: ...
    async def ledger(
        self, user_id: str, asset: str | None, limit: int, assets: list[str]
    ) -> list[dict]: ...
    async def ledger_seq(self) -> int: ...
    async def ledger_audit(self, up_to_seq: int) -> LedgerAudit: ...


# How often the audit asks whether the history's ledger has caught up.
_AUDIT_POLL_S = 0.05


def _checked(reply: Reply) -> Any:
    if isinstance(reply, Rejection):
        raise RequestError(reply.code, reply.message)
    return reply


class Backend:
    """One exchange behind every surface."""

    def __init__(self, config: MarketConfig, gateway: Gateway, history: History) -> None:
        self.config = config
        self.gateway = gateway
        self.history = history

    # --- commands ------------------------------------------------------------------------------

    async def place(self, command: PlaceOrder) -> OrderView:
        return _checked(await self.gateway.submit(command))

    async def place_many(self, commands: list[PlaceOrder]) -> list[OrderView | Rejection]:
        """Each command accepted or refused on its own (one round trip for all)."""
        if not commands:
            return []
        return list(await self.gateway.submit_many(commands))

    async def cancel(self, command: CancelOrder) -> OrderView:
        return _checked(await self.gateway.submit(command))

    async def cancel_all(self, command: CancelAll) -> list[OrderView]:
        return _checked(await self.gateway.submit(command))

    async def transfer(self, command: Deposit | Withdraw) -> Transferred:
        return _checked(await self.gateway.submit(command))

    async def new_user_id(self, above: int) -> str:
        """An id for a new user, allocated by the engine (see :class:`CreateUser`)."""
        reply: UserCreated = _checked(await self.gateway.submit(CreateUser(above)))
        return reply.user_id

    # --- live state ----------------------------------------------------------------------------

    async def depth(self, market: str, limit: int | None) -> Depth:
        return _checked(await self.gateway.query(GetDepth(market, limit)))

    async def open_orders(self, user_id: str, market: str | None) -> list[OrderView]:
        return _checked(await self.gateway.query(GetOpenOrders(user_id, market)))

    async def balances(self, user_id: str) -> dict[str, Balance]:
        return _checked(await self.gateway.query(GetBalances(user_id)))

    async def audit(self, wait_s: float) -> tuple[LedgerAudit, LedgerAudit]:
        """The engine's half of the audit and the history's, the latter once its ledger has
        reached the engine's last movement or ``wait_s`` has passed (then it is behind, which
        :func:`exchange.audit.problems` says). The history is summed up to the engine's
        sequence, so both halves describe the same commands."""
        engine: LedgerAudit = _checked(await self.gateway.query(GetAudit()))
        with trio.move_on_after(wait_s):
            while await self.history.ledger_seq() < engine.moved_seq:
                await trio.sleep(_AUDIT_POLL_S)
        return engine, await self.history.ledger_audit(engine.seq)

    async def order(
        self, user_id: str, order_id: int | None, client_order_id: str | None
    ) -> OrderView | dict:
        """An order the engine still holds (a view), else the closed order from PostgreSQL
        (a contract-shaped dict). Raises RequestError(ORDER_NOT_FOUND)."""
        reply = await self.gateway.query(GetOrder(user_id, order_id, client_order_id))
        if not isinstance(reply, Rejection):
            return reply
        if reply.code is not ErrorCode.ORDER_NOT_FOUND:
            raise RequestError(reply.code, reply.message)
        stored = await self.history.order(
            user_id, order_id=order_id, client_order_id=client_order_id
        )
        if stored is None:
            raise RequestError(ErrorCode.ORDER_NOT_FOUND, "no such order")
        return stored
