-- Exact candles on TimescaleDB whenever trades are written, and archival of old history.
--
-- Why 0003's continuous aggregates missed candles
-- ------------------------------------------------
-- A real-time continuous aggregate answers from two parts: the materialized buckets below its
-- watermark (the end of the last bucket a refresh materialized) and, above it, an aggregate of
-- the source computed at query time. A trade written *below* the watermark is in neither: it
-- is only logged as an invalidation, and shows when a refresh next covers its bucket. The
-- writer does write below the watermark: history in the past (a backlog, a test's trades of
-- 2024), trades late or out of order by more than a refresh interval. The 1-minute policy ran
-- in the background while such trades were being written, moved the watermark past them, and
-- the trades written after that were missing until the next run (33 candles out of 1,000).
-- A hierarchical aggregate adds a second way to lose them: candles_1h reads candles_1m's
-- materialization, so refreshing candles_1h before candles_1m changes nothing.
--
-- The design
-- ----------
-- Each aggregate has a settle lag (candle_refresh below): nothing ever refreshes it past its
-- horizon, time_bucket(width, now() - lag). Refresh windows only materialize whole buckets
-- inside them, so the watermark never passes the horizon: a trade at or after the horizon is
-- always served by real-time aggregation, however the refreshes are timed. The refresh
-- policies use the lag as end_offset. After every committed batch the writer calls
-- settle_candles(oldest, newest) with its trades' time range: for each aggregate, finest
-- first (a coarser one is built from the finer one's materialization), the buckets of the
-- batch that lie before the horizon are refreshed at once (clamped to the horizon, so the
-- rule holds for the writer's refreshes too). Trades of the last minute - the bucket in
-- progress and ordinary writer lag - cost nothing; only writes into the past pay for a
-- refresh, of just their buckets. A refresh that was running concurrently cannot hide a batch
-- either: its window ended at its own horizon, no later than the one settle_candles checks.
-- TimescaleDB moves its invalidation threshold in a transaction of its own before it
-- materializes, so a concurrent insert is either logged or seen by that refresh.
--
-- The policies still refresh the whole history (start_offset NULL: only invalidated ranges
-- are re-materialized, so this is cheap) to keep the real-time parts small: at most lag +
-- schedule of the finer level per query (2 minutes of trades, 2 hours of 1-minute candles,
-- 2 days of hourly ones). With a retention policy they start at the retention age instead
-- (configure_history_archival): a refresh over dropped chunks would delete their candles.
--
-- Chunks: trades by time in chunks of 1 day (0002): a day of trades of a busy exchange and
-- its indexes stays within memory, and retention and compression work in days. Orders by
-- created_at in chunks of 7 days (0002): fewer, larger rows per chunk than trades, and an
-- order's key (order_id, created_at) includes the partitioning column as TimescaleDB's unique
-- keys must; created_at never changes for an order, so the writer's upsert by order id is an
-- upsert on that key, into a compressed chunk as well (TimescaleDB decompresses the batch it
-- conflicts with). The aggregates' materializations keep TimescaleDB's default of 10 times
-- their source's interval (10 days of minutes, 100 days of hours, 1,000 days of days).
--
-- Compression (the columnstore): trades segmented by market (every trades query but a user's
-- fills names one market) and ordered by time, id descending like the queries read them;
-- orders segmented by user (every orders query names one user), ordered by creation. The age
-- is configured at run time (configure_history_archival, from HISTORY_COMPRESS_AFTER_DAYS).
--
-- Plain PostgreSQL: the trigger of 0003 keeps the candles in the inserting transaction, so
-- settle_candles has nothing to do; it exists so the writer runs the same calls in both modes.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE PROCEDURE settle_candles(oldest timestamptz, newest timestamptz)
            LANGUAGE sql AS $fn$ SELECT $fn$;
        RETURN;
    END IF;

    -- Finest first: settle_candles refreshes in this order.
    CREATE TABLE candle_refresh (
        view_name       text PRIMARY KEY,
        width           interval NOT NULL,
        lag             interval NOT NULL,  -- policies' end_offset; the horizon's distance
        schedule        interval NOT NULL
    );
    INSERT INTO candle_refresh VALUES
        ('candles_1m', INTERVAL '1 minute', INTERVAL '1 minute', INTERVAL '1 minute'),
        ('candles_1h', INTERVAL '1 hour', INTERVAL '1 hour', INTERVAL '5 minutes'),
        ('candles_1d', INTERVAL '1 day', INTERVAL '1 day', INTERVAL '1 hour');

    ALTER TABLE trades SET (
        timescaledb.enable_columnstore,
        timescaledb.segmentby = 'market',
        timescaledb.orderby = 'time DESC, id DESC'
    );
    ALTER TABLE orders SET (
        timescaledb.enable_columnstore,
        timescaledb.segmentby = 'user_id',
        timescaledb.orderby = 'created_at DESC, order_id DESC'
    );

    CREATE PROCEDURE settle_candles(oldest timestamptz, newest timestamptz)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cagg candle_refresh;
            horizon timestamptz;
        BEGIN
            -- An array, not a cursor loop: the refreshes commit.
            FOREACH cagg IN ARRAY (SELECT array_agg(c ORDER BY c.width) FROM candle_refresh c)
            LOOP
                horizon := time_bucket(cagg.width, now() - cagg.lag);
                IF oldest < horizon THEN
                    CALL refresh_continuous_aggregate(
                        cagg.view_name::regclass,
                        time_bucket(cagg.width, oldest),
                        least(time_bucket(cagg.width, newest) + cagg.width, horizon),
                        -- One materialization per invalidated range, not one per 10 buckets
                        -- (the default): a batch's buckets are few and its ranges narrow.
                        options => '{"buckets_per_batch": 0}');
                END IF;
            END LOOP;
        END
        $fn$;

    -- Compression after compress_after, retention of trades for retain_for (NULL: off), and the
    -- refresh policies to match; idempotent, and serialised between writers starting together.
    CREATE FUNCTION configure_history_archival(compress_after interval, retain_for interval)
            RETURNS void LANGUAGE plpgsql AS $fn$
        DECLARE
            cagg candle_refresh;
        BEGIN
            PERFORM pg_advisory_xact_lock(7400311002);
            PERFORM remove_compression_policy('trades', if_exists => true);
            PERFORM remove_compression_policy('orders', if_exists => true);
            IF compress_after IS NOT NULL THEN
                PERFORM add_compression_policy('trades', compress_after => compress_after);
                PERFORM add_compression_policy('orders', compress_after => compress_after);
            END IF;
            -- Orders are kept: a chunk of old orders may hold one still resting on the book.
            PERFORM remove_retention_policy('trades', if_exists => true);
            IF retain_for IS NOT NULL THEN
                PERFORM add_retention_policy('trades', drop_after => retain_for);
            END IF;
            FOREACH cagg IN ARRAY (SELECT array_agg(c ORDER BY c.width) FROM candle_refresh c)
            LOOP
                PERFORM remove_continuous_aggregate_policy(
                    cagg.view_name::regclass, if_exists => true);
                PERFORM add_continuous_aggregate_policy(cagg.view_name::regclass,
                    start_offset => retain_for, end_offset => cagg.lag,
                    schedule_interval => cagg.schedule);
            END LOOP;
        END
        $fn$;

    -- The policies of 0003, now from candle_refresh (same values); compression stays off
    -- until the writer configures it.
    PERFORM configure_history_archival(NULL, NULL);
END
$$;
