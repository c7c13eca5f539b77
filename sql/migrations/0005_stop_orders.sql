-- Stop orders (contract v1.4): an order's trigger price and the time it triggered.
--
-- Both columns are nullable without a default, so adding them rewrites nothing: existing rows
-- (every order placed before stop orders) read NULL, which is what the order object says for an
-- order without a trigger. That also holds on TimescaleDB, where orders is a hypertable and its
-- old chunks may be compressed: adding a nullable column without a default is a change of the
-- catalog only, for the compressed chunks as for the others.
--
-- The status check gains 'trigger_pending' (a stop waiting for its price). A CHECK constraint is
-- replaced, not altered: dropped and added again under the same name. Adding it validates the
-- rows already stored, compressed ones included on TimescaleDB, which read as any other row
-- (they all pass: no stored status is new to the list).

ALTER TABLE orders ADD COLUMN trigger_price numeric CHECK (trigger_price > 0);
ALTER TABLE orders ADD COLUMN triggered_at timestamptz;

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN (
    'new', 'partially_filled', 'filled', 'cancelled', 'expired', 'rejected', 'trigger_pending'));
