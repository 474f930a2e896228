"""The reliability suite runs end to end at its reduced sizes and every scenario passes (no timing assertions).

`python -m reliability` starts and stops its own broker (dev/kafka on port 29092, its own state directory),
because one of its scenarios kills the broker; the shared broker on 9092 is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliability.cli import HEADER, SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


def _rows(stdout: str) -> list[list[str]]:
    """The rows of the table on stdout (header and rule excluded), as cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines, f"no table on stdout:\n{stdout}"
    assert tuple(c.strip() for c in lines[0].strip("|").split("|")) == HEADER
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.timeout(600)
def test_quick_reliability_run_passes_every_scenario(tmp_path: Path) -> None:
    """`python -m reliability --quick` prints one row per scenario, each PASS, and exits 0."""
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "reliability", "--quick", "--results", str(results)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=540,
    )
    rows = _rows(proc.stdout)
    assert len(rows) == len(SCENARIOS), proc.stdout
    failed = [row for row in rows if row[HEADER.index("result")] != "PASS"]
    assert not failed, "\n".join(" | ".join(row) for row in failed) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Machine" in results.read_text()
