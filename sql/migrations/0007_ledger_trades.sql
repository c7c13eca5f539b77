-- The ledger's trades: one row per party of a trade instead of one per movement.
--
-- A trade moves up to eight totals (each side's two legs and fee, the fee account's two
-- credits), and storing each as a row of 0006's table with its (user, asset) index cost
-- PostgreSQL's writer backend ~20 µs per trade, nearly halving the writer's trades/s. A party
-- row holds all of one user's movements of one trade, under two indexes of its own:
-- benchmarks/ledger_shapes.py measures the shapes.
--
-- Each row reads as up to four movements, in this order (its `idx` is the first one's place
-- among its command's movements, the writer leaves room for all four): the quote leg, the
-- quote fee, the base leg, the base fee. Amounts are signed as the movements are (the buyer's
-- quote leg and base fee are negative, the fee account's fees positive); a zero amount is no
-- movement. `quote_balance` and `base_balance` are the party's totals after its movements of the
-- trade, so a leg's balance is the total before its fee.
--
-- 0006's table keeps its rows (existing history is not rewritten) as `ledger_movements`, where
-- deposits and withdrawals go on being written. The view `ledger` is every movement of both, in
-- 0006's columns: what GET /api/v1/ledger and the audit read.
--
-- Ids: both tables draw from one sequence, four apart from this migration on, and a party row's
-- movements are its id plus their place in the row, so every movement keeps one stable id, the
-- ones already shown included.

ALTER TABLE ledger RENAME TO ledger_movements;
ALTER INDEX ledger_pkey RENAME TO ledger_movements_pkey;
ALTER INDEX ledger_user_asset RENAME TO ledger_movements_user_asset;
ALTER TABLE ledger_movements ALTER COLUMN id SET INCREMENT BY 4;
SELECT setval(pg_get_serial_sequence('ledger_movements', 'id'),
              (coalesce(max(id), 0) / 4 + 1) * 4)
FROM ledger_movements;

CREATE TABLE ledger_trades (
    id             bigint  NOT NULL DEFAULT nextval(pg_get_serial_sequence('ledger_movements', 'id')),
    seq            bigint  NOT NULL,
    idx            integer NOT NULL,
    user_id        text    NOT NULL,
    trade_id       bigint  NOT NULL,
    base           text    NOT NULL,
    quote          text    NOT NULL,
    quote_amount   bigint  NOT NULL,
    quote_fee      bigint  NOT NULL,
    base_amount    bigint  NOT NULL,
    base_fee       bigint  NOT NULL,
    quote_balance  bigint  NOT NULL,
    base_balance   bigint  NOT NULL,
    ts_ms          bigint  NOT NULL,
    PRIMARY KEY (seq, idx)
);

CREATE INDEX ledger_trades_user ON ledger_trades (user_id, seq DESC, idx DESC);

-- A party row's movements: the one place that reads the row (the view, GET /api/v1/ledger).
CREATE FUNCTION ledger_trade_movements(t ledger_trades)
RETURNS TABLE (id bigint, seq bigint, idx integer, user_id text, asset text, kind text,
               amount bigint, balance bigint, ref bigint, ts_ms bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT t.id + m.place, t.seq, t.idx + m.place, t.user_id, m.asset, m.kind, m.amount, m.balance,
       t.trade_id, t.ts_ms
FROM (VALUES
    (0, t.quote, 'trade', t.quote_amount, t.quote_balance - t.quote_fee),
    (1, t.quote, 'fee',   t.quote_fee,    t.quote_balance),
    (2, t.base,  'trade', t.base_amount,  t.base_balance - t.base_fee),
    (3, t.base,  'fee',   t.base_fee,     t.base_balance)
) AS m (place, asset, kind, amount, balance)
WHERE m.amount <> 0
$$;

CREATE VIEW ledger AS
SELECT id, seq, idx, user_id, asset, kind, amount, balance, ref, ts_ms
FROM ledger_movements
UNION ALL
SELECT m.*
FROM ledger_trades AS t
CROSS JOIN LATERAL ledger_trade_movements(t) AS m;
