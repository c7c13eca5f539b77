-- TimescaleDB when the server has it, plain PostgreSQL (15+) otherwise.
--
-- The extension may be missing, not preloaded, or refused to this role: the project then runs
-- on plain tables. CREATE EXTENSION without the library in shared_preload_libraries ends the
-- session (FATAL, which no exception handler catches), so it is tried only when preloaded.
-- Later migrations branch on whether the extension is installed (pg_extension), so the same
-- files succeed in both modes.
DO $$
DECLARE
    preloaded boolean;
BEGIN
    BEGIN
        preloaded := current_setting('shared_preload_libraries') LIKE '%timescaledb%';
    EXCEPTION WHEN OTHERS THEN  -- the setting may be hidden from this role
        preloaded := false;
    END;
    IF preloaded AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    ELSE
        RAISE NOTICE 'TimescaleDB not available; using plain PostgreSQL';
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'TimescaleDB not available (%); using plain PostgreSQL', SQLERRM;
END
$$;

-- Without TimescaleDB, a time_bucket(interval, timestamptz) over date_bin, so every query reads
-- the same in both modes. TimescaleDB's default origin for buckets shorter than a month is
-- Monday 2000-01-03 00:00 UTC (weeks start on Monday); every interval the contract names (1m to
-- 1d) divides the two days between it and 2000-01-01, so those buckets match either origin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
            RETURNS timestamptz
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            AS $fn$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $fn$;
    END IF;
END
$$;
