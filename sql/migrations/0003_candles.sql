-- Candles of 1 minute, 1 hour and 1 day; klines of every interval roll these up with time_bucket.
--
-- A candle's open is the price of its first trade and its close that of its last, in engine
-- order (trade ids); first_id and last_id let coarser candles and partial windows combine them.
--
-- TimescaleDB: continuous aggregates, 1h built on 1m and 1d on 1h (hierarchical, TimescaleDB
-- 2.9+), with real-time aggregation so the newest, not yet materialized buckets are included,
-- and refresh policies. A refresh only re-materializes invalidated ranges, so an unbounded
-- start_offset is cheap and also picks up trades written late (a writer catching up a backlog).
--
-- Plain PostgreSQL: tables of the same name and columns, kept by a statement-level trigger on
-- trades in the transaction that inserts them. The trigger sees only rows really inserted (its
-- transition table skips ON CONFLICT DO NOTHING duplicates), and every column combines
-- associatively (first/last by trade id, max, min, sums), so redelivery and concurrent writers
-- leave the candles exact. Trades are append-only: nothing updates or deletes them.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE $sql$
            CREATE MATERIALIZED VIEW candles_1m
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT market,
                   time_bucket(INTERVAL '1 minute', time) AS bucket,
                   first(price, id) AS open,
                   max(price) AS high,
                   min(price) AS low,
                   last(price, id) AS close,
                   sum(quantity) AS volume,
                   sum(quote_quantity) AS quote_volume,
                   count(*) AS trade_count,
                   min(id) AS first_id,
                   max(id) AS last_id
            FROM trades
            GROUP BY market, bucket
            WITH NO DATA
        $sql$;
        EXECUTE $sql$
            CREATE MATERIALIZED VIEW candles_1h
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT market,
                   time_bucket(INTERVAL '1 hour', bucket) AS bucket,
                   first(open, first_id) AS open,
                   max(high) AS high,
                   min(low) AS low,
                   last(close, last_id) AS close,
                   sum(volume) AS volume,
                   sum(quote_volume) AS quote_volume,
                   sum(trade_count) AS trade_count,
                   min(first_id) AS first_id,
                   max(last_id) AS last_id
            FROM candles_1m
            GROUP BY market, time_bucket(INTERVAL '1 hour', bucket)
            WITH NO DATA
        $sql$;
        EXECUTE $sql$
            CREATE MATERIALIZED VIEW candles_1d
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT market,
                   time_bucket(INTERVAL '1 day', bucket) AS bucket,
                   first(open, first_id) AS open,
                   max(high) AS high,
                   min(low) AS low,
                   last(close, last_id) AS close,
                   sum(volume) AS volume,
                   sum(quote_volume) AS quote_volume,
                   sum(trade_count) AS trade_count,
                   min(first_id) AS first_id,
                   max(last_id) AS last_id
            FROM candles_1h
            GROUP BY market, time_bucket(INTERVAL '1 day', bucket)
            WITH NO DATA
        $sql$;
        PERFORM add_continuous_aggregate_policy('candles_1m',
            start_offset => NULL::interval, end_offset => INTERVAL '1 minute',
            schedule_interval => INTERVAL '1 minute');
        PERFORM add_continuous_aggregate_policy('candles_1h',
            start_offset => NULL::interval, end_offset => INTERVAL '1 hour',
            schedule_interval => INTERVAL '5 minutes');
        PERFORM add_continuous_aggregate_policy('candles_1d',
            start_offset => NULL::interval, end_offset => INTERVAL '1 day',
            schedule_interval => INTERVAL '1 hour');
        RETURN;
    END IF;

    CREATE TABLE candles_1m (
        market       text        NOT NULL,
        bucket       timestamptz NOT NULL,
        open         numeric     NOT NULL,
        high         numeric     NOT NULL,
        low          numeric     NOT NULL,
        close        numeric     NOT NULL,
        volume       numeric     NOT NULL,
        quote_volume numeric     NOT NULL,
        trade_count  bigint      NOT NULL,
        first_id     bigint      NOT NULL,
        last_id      bigint      NOT NULL,
        PRIMARY KEY (market, bucket)
    );
    CREATE TABLE candles_1h (LIKE candles_1m INCLUDING ALL);
    CREATE TABLE candles_1d (LIKE candles_1m INCLUDING ALL);

    CREATE FUNCTION candles_add_trades() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        WITH m AS (
            SELECT market,
                   time_bucket(INTERVAL '1 minute', time) AS bucket,
                   (array_agg(price ORDER BY id))[1] AS open,
                   max(price) AS high,
                   min(price) AS low,
                   (array_agg(price ORDER BY id DESC))[1] AS close,
                   sum(quantity) AS volume,
                   sum(quote_quantity) AS quote_volume,
                   count(*) AS trade_count,
                   min(id) AS first_id,
                   max(id) AS last_id
            FROM new_trades
            GROUP BY 1, 2
        ), h AS (
            SELECT market,
                   time_bucket(INTERVAL '1 hour', bucket) AS bucket,
                   (array_agg(open ORDER BY first_id))[1] AS open,
                   max(high) AS high,
                   min(low) AS low,
                   (array_agg(close ORDER BY last_id DESC))[1] AS close,
                   sum(volume) AS volume,
                   sum(quote_volume) AS quote_volume,
                   sum(trade_count) AS trade_count,
                   min(first_id) AS first_id,
                   max(last_id) AS last_id
            FROM m
            GROUP BY 1, 2
        ), d AS (
            SELECT market,
                   time_bucket(INTERVAL '1 day', bucket) AS bucket,
                   (array_agg(open ORDER BY first_id))[1] AS open,
                   max(high) AS high,
                   min(low) AS low,
                   (array_agg(close ORDER BY last_id DESC))[1] AS close,
                   sum(volume) AS volume,
                   sum(quote_volume) AS quote_volume,
                   sum(trade_count) AS trade_count,
                   min(first_id) AS first_id,
                   max(last_id) AS last_id
            FROM h
            GROUP BY 1, 2
        ), minutes AS (
            -- Rows in key order, so concurrent writers lock candles in the same order.
            INSERT INTO candles_1m AS c SELECT * FROM m ORDER BY market, bucket
            ON CONFLICT (market, bucket) DO UPDATE SET
                open = CASE WHEN excluded.first_id < c.first_id THEN excluded.open ELSE c.open END,
                close = CASE WHEN excluded.last_id > c.last_id THEN excluded.close ELSE c.close END,
                high = greatest(c.high, excluded.high),
                low = least(c.low, excluded.low),
                volume = c.volume + excluded.volume,
                quote_volume = c.quote_volume + excluded.quote_volume,
                trade_count = c.trade_count + excluded.trade_count,
                first_id = least(c.first_id, excluded.first_id),
                last_id = greatest(c.last_id, excluded.last_id)
        ), hours AS (
            INSERT INTO candles_1h AS c SELECT * FROM h ORDER BY market, bucket
            ON CONFLICT (market, bucket) DO UPDATE SET
                open = CASE WHEN excluded.first_id < c.first_id THEN excluded.open ELSE c.open END,
                close = CASE WHEN excluded.last_id > c.last_id THEN excluded.close ELSE c.close END,
                high = greatest(c.high, excluded.high),
                low = least(c.low, excluded.low),
                volume = c.volume + excluded.volume,
                quote_volume = c.quote_volume + excluded.quote_volume,
                trade_count = c.trade_count + excluded.trade_count,
                first_id = least(c.first_id, excluded.first_id),
                last_id = greatest(c.last_id, excluded.last_id)
        )
        INSERT INTO candles_1d AS c SELECT * FROM d ORDER BY market, bucket
        ON CONFLICT (market, bucket) DO UPDATE SET
            open = CASE WHEN excluded.first_id < c.first_id THEN excluded.open ELSE c.open END,
            close = CASE WHEN excluded.last_id > c.last_id THEN excluded.close ELSE c.close END,
            high = greatest(c.high, excluded.high),
            low = least(c.low, excluded.low),
            volume = c.volume + excluded.volume,
            quote_volume = c.quote_volume + excluded.quote_volume,
            trade_count = c.trade_count + excluded.trade_count,
            first_id = least(c.first_id, excluded.first_id),
            last_id = greatest(c.last_id, excluded.last_id);
        RETURN NULL;
    END
    $fn$;

    CREATE TRIGGER trades_candles
        AFTER INSERT ON trades
        REFERENCING NEW TABLE AS new_trades
        FOR EACH STATEMENT EXECUTE FUNCTION candles_add_trades();
END
$$;
