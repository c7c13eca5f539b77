"""The records every program shares: enums, commands, replies and events.

Inside these records money is integers: ``price`` in ticks, ``quantity`` in lots and amounts in
an asset's minor units (see :mod:`exchange.markets`). :mod:`exchange.codec` carries them between
programs as they are (integers stay integers); the contract's decimal strings are rendered from
them at the edges (:mod:`exchange.views`).

Commands change state and go through the durable log; queries only read. The engine answers
each with a reply (a record or a :class:`Rejection`) and, for commands, a list of events.
"""

from __future__ import annotations

import enum

import attrs

from exchange.errors import ErrorCode

# The account trading fees are credited to (a user id no surface can name: it has a colon).
FEE_ACCOUNT = "exchange:fees"


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class SelfTradePrevention(enum.StrEnum):
    CANCEL_TAKER = "cancel_taker"
    CANCEL_MAKER = "cancel_maker"
    CANCEL_BOTH = "cancel_both"


class OrderStatus(enum.StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    TRIGGER_PENDING = "trigger_pending"  # a stop order waiting for its trigger price

    @property
    def is_open(self) -> bool:
        """Listed by the open-orders query and cancellable (resting or waiting to trigger)."""
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset(
    (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.TRIGGER_PENDING)
)


# --- commands (state-changing, logged) ---------------------------------------------------------


@attrs.frozen
class PlaceOrder:
    """Place an order. A market buy gives ``quantity`` or ``quote_quantity`` (quote minor units).

    With ``trigger_price`` (ticks) it is a stop order: it waits, off the book, until a trade in
    its market prints at or through that price (see :mod:`exchange.engine.stops`).
    """

    user_id: str
    market: str
    side: Side
    type: OrderType = OrderType.LIMIT
    price: int | None = None
    quantity: int | None = None
    quote_quantity: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    client_order_id: str | None = None
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER
    trigger_price: int | None = None


@attrs.frozen
class CancelOrder:
    """Cancel one open order of ``user_id`` by engine id or by client id."""

    user_id: str
    market: str
    order_id: int | None = None
    client_order_id: str | None = None


@attrs.frozen
class CancelAll:
    """Cancel every open order of ``user_id`` (in one market, or all)."""

    user_id: str
    market: str | None = None


@attrs.frozen
class Deposit:
    user_id: str
    asset: str
    amount: int


@attrs.frozen
class Withdraw:
    user_id: str
    asset: str
    amount: int


@attrs.frozen
class CreateUser:
    """Allocate the id of a new user: one the engine never handed out and no ``user_id`` that
    has held a balance or an order has. The engine is the one writer, so two allocations can
    never meet. Ids up to ``above`` are taken outside the engine (see exchange.credentials)."""

    above: int = 0


Command = PlaceOrder | CancelOrder | CancelAll | Deposit | Withdraw | CreateUser


# --- queries (read-only, not logged) -----------------------------------------------------------


@attrs.frozen
class GetDepth:
    market: str
    limit: int | None = None


@attrs.frozen
class GetOpenOrders:
    user_id: str
    market: str | None = None


@attrs.frozen
class GetOrder:
    user_id: str
    order_id: int | None = None
    client_order_id: str | None = None


@attrs.frozen
class GetBalances:
    user_id: str


@attrs.frozen
class GetAudit:
    """The engine's half of the audit: per asset what came in, went out and is held."""


Query = GetDepth | GetOpenOrders | GetOrder | GetBalances | GetAudit


# --- replies -----------------------------------------------------------------------------------


@attrs.frozen
class Rejection:
    """A refused command or query; nothing changed."""

    code: ErrorCode
    message: str


@attrs.frozen
class Fill:
    """One trade of an order, as the order's owner sees it."""

    trade_id: int
    price: int
    quantity: int


@attrs.frozen
class OrderView:
    """An order's state at one moment (what the contract calls an order object).

    ``trigger_price`` is set on stop orders; ``triggered_at`` (ms) once the stop has triggered.
    Both come last, with defaults, so that views encoded before stop orders existed still decode.
    """

    order_id: int
    user_id: str
    client_order_id: str | None
    market: str
    side: Side
    type: OrderType
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    executed_quantity: int
    executed_quote_quantity: int
    status: OrderStatus
    time_in_force: TimeInForce
    post_only: bool
    self_trade_prevention: SelfTradePrevention
    created_at: int
    updated_at: int
    fills: tuple[Fill, ...] = ()
    trigger_price: int | None = None
    triggered_at: int | None = None


@attrs.frozen
class Balance:
    available: int
    locked: int


@attrs.frozen
class Depth:
    """Aggregated levels, best first: ``(price_ticks, quantity_lots)``."""

    market: str
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    last_update_id: int
    timestamp: int


@attrs.frozen
class UserCreated:
    """The reply to :class:`CreateUser`."""

    user_id: str


@attrs.frozen
class Transferred:
    """The reply to :class:`Deposit` and :class:`Withdraw`: the transfer's id (the command's
    log sequence number, so a replay gives the same id) and the user's balances after it."""

    transfer_id: int
    balances: dict[str, Balance]


@attrs.frozen
class AssetTotals:
    """One asset's account, in minor units: what was deposited and withdrawn in all, what the
    users hold (available + locked) and what the fee account holds. Nothing is created or lost
    when ``difference`` is 0."""

    deposits: int
    withdrawals: int
    users: int
    fees: int

    @property
    def difference(self) -> int:
        return self.deposits - self.withdrawals - self.users - self.fees


@attrs.frozen
class LedgerAudit:
    """The reply to :class:`GetAudit`. ``seq`` is the last command applied; ``moved_seq`` the
    last one that moved funds (the history has caught up once its ledger reaches it)."""

    seq: int
    moved_seq: int
    assets: dict[str, AssetTotals]


Reply = (
    OrderView
    | list[OrderView]
    | dict[str, Balance]
    | Depth
    | UserCreated
    | Transferred
    | LedgerAudit
    | Rejection
)


# --- events (what downstream consumers see) ----------------------------------------------------


@attrs.frozen
class OrderUpdated:
    """An order was accepted, filled, cancelled, expired or rejected (``order.status`` says)."""

    order: OrderView


@attrs.frozen
class TradeExecuted:
    trade_id: int
    market: str
    price: int
    quantity: int
    quote_quantity: int
    taker_side: Side
    buy_order_id: int
    sell_order_id: int
    buyer_id: str
    seller_id: str
    timestamp: int
    # Fees in minor units: the buyer's in base, the seller's in quote (last, with defaults, so
    # that trades encoded before fees were published still decode).
    buyer_fee: int = 0
    seller_fee: int = 0

    @property
    def is_buyer_maker(self) -> bool:
        return self.taker_side is Side.SELL


@attrs.frozen
class BalanceChanged:
    """A user's balance of one asset after a command (absolute values)."""

    user_id: str
    asset: str
    available: int
    locked: int


@attrs.frozen
class DepthChanged:
    """Levels of one book changed; quantities are absolute, 0 removes the level.

    Each changed level takes one update id, so ``last_update_id - first_update_id + 1`` equals
    the number of levels in ``bids`` and ``asks``, and consecutive events chain without gaps.
    """

    market: str
    first_update_id: int
    last_update_id: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    timestamp: int


@attrs.frozen
class FundsTransferred:
    """A deposit (``amount`` > 0) or withdrawal (``amount`` < 0) of ``transfer_id``."""

    transfer_id: int
    user_id: str
    asset: str
    amount: int
    timestamp: int


Event = OrderUpdated | TradeExecuted | BalanceChanged | DepthChanged | FundsTransferred


@attrs.frozen
class Outcome:
    """What applying one command produced."""

    reply: Reply
    events: list[Event] = attrs.Factory(list)
