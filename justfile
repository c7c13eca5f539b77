# Developer tasks. `just setup` once, then `just test`.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The active virtualenv's python (CI puts .venv-ci/bin first on PATH), else the repo's .venv.
# Importing exchange.localservers proves the project and its dependencies are installed there.
python := `if [[ -n "${VIRTUAL_ENV:-}" ]] || python -c 'import exchange.localservers, pytest_timeout' >/dev/null 2>&1; then echo python; else echo .venv/bin/python; fi`

# List the recipes.
default:
    @{{ just_executable() }} --list

# Create .venv (if missing) and install the project with its dev tools.
setup:
    [[ -d .venv ]] || python3 -m venv .venv
    .venv/bin/pip install -e '.[dev]'

# Run the test suite (starts private Redis and PostgreSQL servers; needs their binaries).
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

# Benchmark the matching engine.
bench-engine:
    {{ python }} benchmarks/bench_engine.py
