-- Trades and orders as the engine reports them.
--
-- Money is NUMERIC without a declared scale: values keep the scale of their market's step exactly
-- and can never be rounded on the way in (a NUMERIC(p, s) column would silently round a value
-- with more than s decimals). Ids are the engine's; every write is an upsert keyed by them.
--
-- With TimescaleDB both tables are hypertables, whose unique keys must contain the partitioning
-- column: trades are keyed (id, time) and orders (order_id, created_at). Neither time ever changes
-- for a given id (engine replay re-creates the same ids at the same times), so the keys are as
-- good as the ids alone. The plain tables use the same keys, so the upserts read the same.

CREATE TABLE trades (
    id              bigint      NOT NULL,
    time            timestamptz NOT NULL,
    market          text        NOT NULL,
    price           numeric     NOT NULL CHECK (price > 0),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    quote_quantity  numeric     NOT NULL CHECK (quote_quantity >= 0),
    is_buyer_maker  boolean     NOT NULL,
    buy_order_id    bigint      NOT NULL,
    sell_order_id   bigint      NOT NULL,
    buyer_id        text        NOT NULL,
    seller_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    PRIMARY KEY (id, time)
);

CREATE INDEX trades_market_time ON trades (market, time DESC, id DESC);
CREATE INDEX trades_buyer ON trades (buyer_id, market, time DESC, id DESC);
CREATE INDEX trades_seller ON trades (seller_id, market, time DESC, id DESC);
CREATE INDEX trades_buy_order ON trades (buy_order_id);
CREATE INDEX trades_sell_order ON trades (sell_order_id);

-- The current state of every order. ``seq`` is the engine sequence of the command that produced
-- this state: an upsert only moves an order forward, never back to an older state.
CREATE TABLE orders (
    order_id                bigint      NOT NULL,
    created_at              timestamptz NOT NULL,
    user_id                 text        NOT NULL,
    client_order_id         text,
    market                  text        NOT NULL,
    side                    text        NOT NULL CHECK (side IN ('buy', 'sell')),
    type                    text        NOT NULL CHECK (type IN ('limit', 'market')),
    price                   numeric,
    quantity                numeric,
    quote_quantity          numeric,
    executed_quantity       numeric     NOT NULL,
    executed_quote_quantity numeric     NOT NULL,
    status                  text        NOT NULL CHECK (status IN (
        'new', 'partially_filled', 'filled', 'cancelled', 'expired', 'rejected')),
    time_in_force           text        NOT NULL,
    post_only               boolean     NOT NULL,
    self_trade_prevention   text        NOT NULL,
    updated_at              timestamptz NOT NULL,
    closed_at               timestamptz,
    seq                     bigint      NOT NULL,
    PRIMARY KEY (order_id, created_at)
);

CREATE INDEX orders_user_closed ON orders (user_id, market, closed_at DESC, order_id DESC)
    WHERE closed_at IS NOT NULL;
CREATE INDEX orders_user_client_id ON orders (user_id, client_order_id)
    WHERE client_order_id IS NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- Our own indexes cover time; no default (time DESC) index to maintain as well.
        PERFORM create_hypertable('trades', 'time',
            chunk_time_interval => INTERVAL '1 day', create_default_indexes => false);
        PERFORM create_hypertable('orders', 'created_at',
            chunk_time_interval => INTERVAL '7 days', create_default_indexes => false);
    END IF;
END
$$;
