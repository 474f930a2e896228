"""Benchmarks of the emitter against the local broker: `python -m bench` (see `bench.cli`).

Each scenario lives in its own module (`backfill`, `latency`, `memory`, `cold_start`, `telegram_efficiency`,
`hot_path`) and returns rows of one table; `bench.cli` runs them, prints the table and writes
`bench/RESULTS.md` with the machine's facts and how every figure was measured.
"""
