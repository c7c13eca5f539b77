-- The ledger's trades: one row per trade instead of one per party.
--
-- 0007's party rows cost PostgreSQL two heap rows and four index entries per trade, and with
-- them the writer lost about a quarter of its trades/s (issue 20's bound is a fifth). A row of
-- `ledger_fills` holds the whole trade: the buyer's movements (the quote paid, the base
-- received, the base fee), the seller's (the quote received, the quote fee, the base delivered)
-- and, when a fee was taken, the fee account's credits, each party's totals after its
-- movements, found by user through a buyer's and a seller's index, and the fee account's
-- through a partial index of the trades that took a fee. benchmarks/ledger_shapes.py measures
-- the shapes: about 60% of the server CPU of 0007's per trade.
--
-- Amounts are positive integers of minor units (the fees are the buyer's in base and the
-- seller's in quote). `fee_account` and its two totals are NULL when no fee was taken.
--
-- A row reads as up to three party rows of 0007 (`ledger_fill_buyer`, `_seller`, `_fees`: the
-- only place that knows a party's signs), so 0007's `ledger_trade_movements` stays the one place
-- that turns a party into movements: the buyer's at idx + 0..3, the seller's at + 4..7, the fee
-- account's at + 8..11, and the ids likewise, so the sequence steps by twelve from now on.
-- 0007's rows stay as they are, with their ids; the writer writes trades here from now on.

ALTER TABLE ledger_movements ALTER COLUMN id SET INCREMENT BY 12;
SELECT setval(pg_get_serial_sequence('ledger_movements', 'id'),
              (greatest(coalesce((SELECT max(id) FROM ledger_movements), 0),
                        coalesce((SELECT max(id) + 3 FROM ledger_trades), 0)) / 12 + 1) * 12);

CREATE TABLE ledger_fills (
    id                    bigint  NOT NULL,
    seq                   bigint  NOT NULL,
    idx                   integer NOT NULL,
    trade_id              bigint  NOT NULL,
    base                  text    NOT NULL,
    quote                 text    NOT NULL,
    buyer_id              text    NOT NULL,
    seller_id             text    NOT NULL,
    quote_units           bigint  NOT NULL,
    base_units            bigint  NOT NULL,
    buyer_fee             bigint  NOT NULL,
    seller_fee            bigint  NOT NULL,
    buyer_quote_balance   bigint  NOT NULL,
    buyer_base_balance    bigint  NOT NULL,
    seller_quote_balance  bigint  NOT NULL,
    seller_base_balance   bigint  NOT NULL,
    fee_account           text,
    fees_quote_balance    bigint,
    fees_base_balance     bigint,
    ts_ms                 bigint  NOT NULL,
    PRIMARY KEY (seq, idx),
    CHECK ((fee_account IS NULL) = (buyer_fee = 0 AND seller_fee = 0))
);

-- The default names the sequence once, here: a nextval(pg_get_serial_sequence(...)) default
-- would look it up again for every row.
DO $$
BEGIN
    EXECUTE format('ALTER TABLE ledger_fills ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                   pg_get_serial_sequence('ledger_movements', 'id'));
END
$$;

CREATE INDEX ledger_fills_buyer ON ledger_fills (buyer_id, seq DESC, idx DESC);
CREATE INDEX ledger_fills_seller ON ledger_fills (seller_id, seq DESC, idx DESC);
CREATE INDEX ledger_fills_fees ON ledger_fills (fee_account, seq DESC, idx DESC)
    WHERE fee_account IS NOT NULL;

CREATE FUNCTION ledger_fill_buyer(f ledger_fills) RETURNS ledger_trades
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT ROW(f.id, f.seq, f.idx, f.buyer_id, f.trade_id, f.base, f.quote,
           -f.quote_units, 0, f.base_units, -f.buyer_fee,
           f.buyer_quote_balance, f.buyer_base_balance, f.ts_ms)::ledger_trades
$$;

CREATE FUNCTION ledger_fill_seller(f ledger_fills) RETURNS ledger_trades
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT ROW(f.id + 4, f.seq, f.idx + 4, f.seller_id, f.trade_id, f.base, f.quote,
           f.quote_units, -f.seller_fee, -f.base_units, 0,
           f.seller_quote_balance, f.seller_base_balance, f.ts_ms)::ledger_trades
$$;

-- NULL for a trade that took no fee.
CREATE FUNCTION ledger_fill_fees(f ledger_fills) RETURNS ledger_trades
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE WHEN f.fee_account IS NOT NULL THEN
    ROW(f.id + 8, f.seq, f.idx + 8, f.fee_account, f.trade_id, f.base, f.quote,
        0, f.seller_fee, 0, f.buyer_fee,
        f.fees_quote_balance, f.fees_base_balance, f.ts_ms)::ledger_trades
END
$$;

CREATE OR REPLACE VIEW ledger AS
SELECT id, seq, idx, user_id, asset, kind, amount, balance, ref, ts_ms
FROM ledger_movements
UNION ALL
SELECT m.*
FROM ledger_trades AS t
CROSS JOIN LATERAL ledger_trade_movements(t) AS m
UNION ALL
SELECT m.*
FROM ledger_fills AS f
CROSS JOIN LATERAL (VALUES (ledger_fill_buyer(f)), (ledger_fill_seller(f)), (ledger_fill_fees(f)))
    AS p (party)
CROSS JOIN LATERAL ledger_trade_movements(p.party) AS m
WHERE (p.party).user_id IS NOT NULL;
