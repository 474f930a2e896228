"""`python -m bench`: run the scenarios, print one table, write the report.

    python -m bench                  # every scenario, default sizes, median of 3 runs → bench/RESULTS.md
    python -m bench --quick --runs 1 # tiny sizes (the smoke test)      → bench/RESULTS-partial.md
    python -m bench --only latency   # one scenario (repeatable, or comma-separated)

Only the table goes to stdout; progress goes to stderr. The exit code is 1 when a scenario failed to run
(a missed target is a finding, not a failure), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from bench.common import DEFAULT_SIZES, QUICK_SIZES, ROOT, Context, delete_topics, ensure_broker, log, run
from bench.report import Row, load_average, machine_facts, render_table, write_results

SCENARIOS: Final = {
    "backfill": "bench.backfill",
    "latency": "bench.latency",
    "memory": "bench.memory",
    "cold-start": "bench.cold_start",
    "telegram": "bench.telegram_efficiency",
    "profile": "bench.hot_path",
    "encode": "bench.encode",
    "politeness": "bench.politeness",
    "media": "bench.media",
    "export": "bench.export",
}
"""Scenario name (for --only) → module with `NAME` and `scenario(ctx) -> list[Row]`, in the table's order."""

FULL_REPORT: Final = Path(__file__).resolve().parent / "RESULTS.md"
PARTIAL_REPORT: Final = Path(__file__).resolve().parent / "RESULTS-partial.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the emitter.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test (well under 60 s)")
    parser.add_argument("--runs", type=int, default=3, help="median of N runs (default 3)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help=f"run only these: {', '.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report path (default {FULL_REPORT.name} for a full run, {PARTIAL_REPORT.name} with --quick or --only, "
        "so that a partial run never overwrites the full report)",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BENCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="the broker (default $BENCH_KAFKA_BOOTSTRAP or 127.0.0.1:9092; started with dev/kafka if silent)",
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: expected one of {', '.join(SCENARIOS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios and report; see the module docstring for the exit codes."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    os.chdir(ROOT)  # child processes (probe, memory runs) import bench and tests from the repository root
    ensure_broker(args.bootstrap)
    ctx = Context(args.bootstrap, args.runs, QUICK_SIZES if args.quick else DEFAULT_SIZES, quick=args.quick)
    chosen = args.only or list(SCENARIOS)
    started = time.perf_counter()
    load_at_start = load_average()
    rows: list[Row] = []
    failed = False
    for name in SCENARIOS:
        if name in chosen:
            scenario_rows, ok = _run_scenario(name, ctx)
            rows += scenario_rows
            failed |= not ok
    table = render_table(rows)
    print(table, flush=True)
    output = args.output or (PARTIAL_REPORT if args.quick or args.only else FULL_REPORT)
    command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    write_results(
        output,
        command=command,
        rows=rows,
        facts={
            **machine_facts(),
            "load average at the start (1/5/15 min)": load_at_start,
            "load average at the end (1/5/15 min)": load_average(),
        },
        notes=ctx.notes,
        sections=ctx.sections,
        seconds=time.perf_counter() - started,
    )
    log(f"report written to {output} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 1 if failed else 0


def _run_scenario(name: str, ctx: Context) -> tuple[list[Row], bool]:
    """Run one scenario; a crash becomes an `error` row so the other scenarios still report."""
    module = importlib.import_module(SCENARIOS[name])
    scenario: Callable[[Context], list[Row]] = module.scenario
    started = time.perf_counter()
    log(f"{name}: start")
    try:
        rows, ok = scenario(ctx), True
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        rows, ok = [Row(module.NAME, "scenario failed", f"{type(e).__name__}: {e}"[:200], verdict="error")], False
    finally:
        # Only the topics this scenario created; never anything else on the broker.
        run(delete_topics(ctx.bootstrap, ctx.topics))
        ctx.topics.clear()
    log(f"{name}: done in {time.perf_counter() - started:.0f} s")
    return rows, ok
