"""Tools for tests and benchmarks (never imported by the programs themselves)."""
