"""`python -m reliability`: run the reliability scenarios, print one table, write RESULTS.md.

Exit code 0 when every row passed, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Final

from reliability import broker_faults, changes, open_transaction, oversize, sigkill, sigterm, telegram_faults
from reliability.common import Broker, Row, ScenarioError, delete_topics, log, machine

Scenario = Callable[..., None]

SCENARIOS: Final[dict[str, tuple[str, ModuleType]]] = {
    "sigkill": ("1 SIGKILL", sigkill),
    "sigterm": ("2 SIGTERM in a transaction", sigterm),
    "broker": ("3 broker kill -9", broker_faults),
    "telegram": ("4 Telegram faults, one run", telegram_faults),
    "oversize": ("5 oversized records", oversize),
    "open-txn": ("6 two identities, one open transaction", open_transaction),
    "changes": ("7 changes during downtime", changes),
}
RESULTS: Final = Path(__file__).resolve().parent / "RESULTS.md"
HEADER: Final = ("scenario", "sent", "received", "lost", "duplicated", "result", "seconds", "details")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under 90 s in all), for smoke tests")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--seed", type=int, help="seed of every random choice (default: from the clock, printed)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"Markdown report (default {RESULTS.name})")
    parser.add_argument("--log-file", type=Path, help="the emitter's logs (default: a new file in the temp dir)")
    parser.add_argument("--keep-broker", action="store_true", help="leave the suite's broker running at the end")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios against the suite's own broker; 0 when all passed."""
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else time.time_ns() // 1_000_000 % 1_000_000
    log_file = args.log_file or _new_log_file()
    logging.basicConfig(
        filename=log_file,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    command = "python -m reliability " + shlex.join(argv if argv is not None else sys.argv[1:])
    log(f"seed {seed}; emitter logs in {log_file}")

    started = time.monotonic()
    broker = Broker()
    was_running = broker.running()
    log(f"broker on {broker.bootstrap}: " + ("already running" if was_running else "starting"))
    try:
        broker.start()
    except ScenarioError as e:
        log(f"cannot start the suite's broker: {e}")
        return 1
    rows: list[Row] = []
    try:
        for key in args.only or list(SCENARIOS):
            title, module = SCENARIOS[key]
            rows.append(_run_one(broker, title, module.run, seed=seed, quick=args.quick))
    finally:
        if not (was_running or args.keep_broker):
            broker.stop()
    total = time.monotonic() - started

    table = _table(rows)
    print(table)
    print(f"\nseed {seed}; {total:.0f} s; {sum(r.passed for r in rows)}/{len(rows)} passed")
    _write_results(args.results, command=command, seed=seed, total=total, table=table, rows=rows)
    log(f"results in {args.results}; emitter logs in {log_file}")
    return 0 if rows and all(r.passed for r in rows) else 1


def _new_log_file() -> Path:
    """A fresh log file in the temp dir: the emitters log a lot, and the terminal is for the table."""
    fd, name = tempfile.mkstemp(prefix="reliability-", suffix=".log")
    os.close(fd)
    return Path(name)


def _run_one(broker: Broker, title: str, scenario: Scenario, *, seed: int, quick: bool) -> Row:
    """One scenario; whatever it raises fails its row instead of the whole run."""
    row = Row(title)
    log(f"{title}: running")
    started = time.monotonic()
    try:
        scenario(broker, row, seed=seed, quick=quick)
    except Exception as e:
        logging.getLogger("reliability").exception("%s aborted", title)
        row.error = f"{type(e).__name__}: {e}"
        traceback.print_exc(file=sys.stderr)
    row.seconds = time.monotonic() - started
    log(f"{row.scenario}: {'PASS' if row.passed else 'FAIL'} in {row.seconds:.0f} s")
    try:
        broker.start()  # a scenario that failed half-way may have left it down
        asyncio.run(delete_topics(broker.bootstrap, row.topics))
    except Exception as e:  # the next scenarios use new topic names anyway, and report a broker that is down
        log(f"after {title}: {type(e).__name__}: {e}")
    return row


def _cells(row: Row) -> tuple[str, ...]:
    t = row.tally
    verdict = "PASS" if row.passed else "FAIL"
    numbers = (f"{t.sent:,}", f"{t.received:,}", f"{t.lost:,}", f"{t.duplicated:,}")
    return (row.scenario, *numbers, verdict, f"{row.seconds:.0f}", row.details)


def _table(rows: Sequence[Row]) -> str:
    """A Markdown table, aligned so it reads well in a terminal too."""
    cells = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    right = {1, 2, 3, 4, 6}  # numbers

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(HEADER), rule, *(line(c) for c in cells[1:])])


def _write_results(path: Path, *, command: str, seed: int, total: float, table: str, rows: Sequence[Row]) -> None:
    """RESULTS.md: how the table was made (command, seed, machine), then the table."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(r.passed for r in rows)
    lines = [
        "# Reliability results",
        "",
        f"Command: `{command.strip()}` (seed {seed}) — {when}, {total / 60:.1f} min, {passed}/{len(rows)} passed.",
        f"Reproduce with `python -m reliability --seed {seed}`.",
        "",
        "## Machine",
        "",
        *(f"- {m}" for m in machine()),
        "",
        "## Results",
        "",
        table,
        "",
        "`sent`: NEW messages a consumer must see (per group, each id once); `received`: NEW records a",
        "read_committed consumer read; `lost`: sent ids never received; `duplicated`: receptions beyond the first.",
        "Scenario 7 counts change records (EDIT, DELETE, REACTIONS) instead of NEW ones.",
        "",
    ]
    path.write_text("\n".join(lines))
