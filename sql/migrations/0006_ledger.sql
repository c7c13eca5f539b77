-- The account ledger: every movement of a user's total (available + locked) of an asset.
--
-- One row per movement: a deposit, a withdrawal, each leg of a trade (what the buyer pays and
-- receives, what the seller delivers and receives) and each fee (taken from the party that
-- pays it, credited to the fee account 'exchange:fees'). Locking and unlocking are not
-- movements. `balance` is the total after the movement, `ref` the trade id or the transfer id
-- (the deposit's or withdrawal's command sequence number), `ts_ms` the engine's time of the
-- command in milliseconds.
--
-- Money is integers of the asset's minor units (bigint), as the engine keeps it: the writer
-- COPYs the engine's integers without rendering them, and the API renders them with the
-- asset's decimals. A movement is keyed by (seq, idx): the command that made it and its place
-- among that command's movements, both deterministic on replay, so a redelivered batch inserts
-- nothing twice. The writer COPYs straight into this table (no staging, the common case) and
-- only when the key refuses a redelivered batch takes the slower path through a staging table
-- and ON CONFLICT DO NOTHING; the integers and the millisecond time are what make the direct
-- COPY cheap.
--
-- The same plain table in both storage modes: a ledger keeps every row (no retention), its key
-- holds no time, and the audit sums it whole.
-- Existing history is not rewritten: the ledger starts with this migration.

CREATE TABLE ledger (
    id       bigint      GENERATED ALWAYS AS IDENTITY,
    seq      bigint      NOT NULL,
    idx      integer     NOT NULL,
    user_id  text        NOT NULL,
    asset    text        NOT NULL,
    kind     text        NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'trade', 'fee')),
    amount   bigint      NOT NULL,
    balance  bigint      NOT NULL,
    ref      bigint      NOT NULL,
    ts_ms    bigint      NOT NULL,
    PRIMARY KEY (seq, idx)
);

CREATE INDEX ledger_user_asset ON ledger (user_id, asset, seq DESC, idx DESC);
