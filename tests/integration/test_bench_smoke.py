"""The benchmark harness runs end to end at tiny sizes and reports every scenario (no timing assertions).

It lives with the integration tests because it needs the real broker: the session's `kafka` fixture starts it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bench.cli import SCENARIOS
from bench.report import HEADER

ROOT = Path(__file__).resolve().parents[2]
_NUMBER = re.compile(r"^-?[\d,]*\.?\d+")
_SCENARIO_NAMES = {
    "1 backfill",
    "2 live latency",
    "3 memory",
    "4 cold start",
    "5 Telegram efficiency",
    "6 profile",
    "7 encode",
    "8 Telegram politeness",
    "9 media backpressure",
    "10 export backfill",
}


def _table(stdout: str) -> list[list[str]]:
    """The rows of the markdown table on stdout (header and rule excluded), as cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines, f"no table on stdout:\n{stdout}"
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert tuple(header) == HEADER
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_quick_bench_reports_every_scenario(kafka: str, tmp_path: Path) -> None:
    """`python -m bench --quick --runs 1` exits 0, prints a row per scenario with numbers, and writes the report."""
    output = tmp_path / "RESULTS.md"
    env = {**os.environ, "BENCH_KAFKA_BOOTSTRAP": kafka, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(proc.stdout)
    assert {row[0] for row in rows} == _SCENARIO_NAMES
    assert len(_SCENARIO_NAMES) == len(SCENARIOS)
    for scenario, figure, value, _target, ratio, verdict in rows:
        assert _NUMBER.match(value), f"{scenario} / {figure}: value {value!r} does not start with a number"
        assert ratio == "—" or float(ratio) >= 0, f"{scenario} / {figure}: ratio {ratio!r}"
        assert verdict in {"pass", "miss", "info"}, f"{scenario} / {figure}: {verdict}"
    report = output.read_text()
    assert "## Machine" in report and "## Hot path" in report
    assert "cores (nproc)" in report
