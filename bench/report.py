"""The one results table, the machine's facts, and `RESULTS.md`."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final, Literal

from bench.common import ROOT

Verdict = Literal["pass", "miss", "info", "error"]
"""pass/miss against a target; info for context figures (ceilings); error when the scenario failed."""

HEADER: Final = ("Scenario", "Figure", "Value", "Ceiling / target", "Ratio", "Pass/miss")
NA: Final = "—"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table. `value` starts with the measured number; `ratio` is value ÷ ceiling (or None)."""

    scenario: str
    figure: str
    value: str
    target: str = NA
    ratio: float | None = None
    verdict: Verdict = "info"


def verdict(ok: bool) -> Verdict:
    """pass or miss."""
    return "pass" if ok else "miss"


def fmt(x: float, digits: int = 0) -> str:
    """A number with thousands separators; NaN (a failed measurement) as 'nan'."""
    if math.isnan(x):
        return "nan"
    return f"{x:,.{digits}f}"


def render_table(rows: Sequence[Row]) -> str:
    """A markdown table, padded so that it also reads well in a terminal."""
    cells = [HEADER] + [
        (r.scenario, r.figure, r.value, r.target, NA if r.ratio is None else f"{r.ratio:.2f}", r.verdict) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine_facts() -> dict[str, str]:
    """What the figures depend on: cores, CPU, memory, and the versions of everything on the path."""
    return {
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU": _cpuinfo_model(),
        "RAM": f"{_meminfo_total_kb() / 1024 / 1024:.1f} GiB",
        "Python": platform.python_version(),
        "Java": _java_version(),
        "Kafka (broker and tools jars)": _kafka_version(),
        "aiokafka / Telethon / fastavro": " / ".join(_dist(n) for n in ("aiokafka", "telethon", "fastavro")),
        "opentelemetry-sdk": _dist("opentelemetry-sdk"),
    }


def load_average() -> str:
    """1/5/15-minute load averages: the machine is shared, so the report says how busy it was."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpuinfo_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def _meminfo_total_kb() -> int:
    found = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(encoding="ascii"), re.MULTILINE)
    return int(found.group(1)) if found else 0


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S607
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (out.stderr or out.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def kafka_classpath() -> str:
    """The broker's jars (incl. kafka-tools) as a java -cp argument, from dev/kafka."""
    out = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "dev" / "kafka"), "classpath"], capture_output=True, text=True, timeout=600, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def _kafka_version() -> str:
    try:
        libs = Path(kafka_classpath().removesuffix("*"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    jars = sorted(p.name for p in libs.glob("kafka-clients-*.jar"))
    return jars[0].removeprefix("kafka-clients-").removesuffix(".jar") if jars else "unknown"


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_results(
    path: Path,
    *,
    command: str,
    rows: Sequence[Row],
    facts: Mapping[str, str],
    notes: Mapping[str, Sequence[str]],
    sections: Mapping[str, str],
    seconds: float,
) -> None:
    """Write the report: command, machine, the table, how each figure was measured, extra sections."""
    out = [
        "# Benchmark results",
        "",
        f"Command: `{command}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.1f} min.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        "",
        "## Results",
        "",
        render_table(rows),
        "",
        "Values are medians over the runs. Ratio = value ÷ the ceiling or target beside it; where two",
        "measurements are compared, the ratio is computed within each run (same machine state) and its",
        "median is reported. `info` rows are ceilings or context, not targets.",
        "",
        "## How each figure was measured",
        "",
    ]
    for scenario, lines in notes.items():
        out += [f"### {scenario}", "", *(f"- {line}" for line in lines), ""]
    for title, body in sections.items():
        out += [f"## {title}", "", body.rstrip(), ""]
    out += ["## Targets missed, and why", "", MISSED.strip(), ""]
    path.write_text("\n".join(out), encoding="utf-8")


MISSED = """
- **Backfill throughput (>= 25,000 rec/s on the Telegram path).** Emitter / raw aiokafka `send()` now holds
  (0.64 against the 0.5 asked), the rate does not: 22,781 rec/s for one channel (0.91 of the target), 39 us of
  CPU a record, CPU / wall 0.90, with the fake Telegram in its own process over MTProto on TCP. Three
  channels in one process reach 26,358 rec/s. One channel cannot use the last tenth of the core: its pages
  depend on each other (the next offset is this page's last id), so one request runs ahead and no more, and
  the fake's own 1.4 ms of CPU a page on the second core, shared with the broker, is not always hidden
  behind the emitter's work. This stretch took the same harness from 14,368 to 22,781 rec/s and 56 to 39 us
  (fcf6f2b against main, the same hour): the page ahead on the wire before the current one is mapped, a
  tighter reader under Telethon's generated parsers, one `Sender` a sender a page, inline absent fields,
  the writer's `Sender` cache. What is left is mostly Telethon's generated `from_reader`s (20% of the
  profile), mapping (14%) and the sink (13%, the writer included).
- **Live p99 at 2,000 msgs/s (<= 250 ms), idle and with a CPU hog: missed.** Idle: p99 361 ms (298.5 ms
  on fcf6f2b the same hour: the spread between runs), p50 83 ms, 1,991 msgs/s sustained; with the hog: p99
  8.4 s, 1,663 msgs/s sustained. Where it goes (per-stage rows): before Telethon dispatches the update (p99
  332 ms idle), not the batch timeout (20 ms), the commit (p99 26 ms) or the consumer (p99 25 ms). A bare
  Telethon client spends 251 us of CPU per update received over MTProto on this CPU (0.50 of a core at
  2,000 msgs/s), the emitter's process 453 us (0.91 of a core): the loop is nearly saturated, so bursts
  queue in front of Telethon's dispatch, and with a hog on the other core (the broker, the fake and the
  probe share it too) the process gets 0.71 of a core and falls behind. The emitter's own half (mapping the
  raw update, tracker and digest per page, one transaction per about 50 records, the digest's text per
  commit) is where the next cuts would come from; past that one group at 2,000 msgs/s on a shared node needs
  Telethon's receiving off the emitter's loop, or a core of its own.
- **Export backfill (>= 60,000 rec/s).** 22,775 rec/s, 42 us of CPU a record. One event loop does
  everything for every record: reading and indexing the file, decoding each message's JSON, mapping it
  (`map_export_message`), encoding it, the tracker, the sink and aiokafka's batches; together several times
  the 16 us a record that 60,000 rec/s allows, against 2.8 us for raw aiokafka `send_batch()` alone.
  Mapping and encoding are pure and could run in worker processes fed chunks of the file (in order per group,
  the loop still committing), but on a 2-core machine that also runs the broker there is no core to give
  them.
- **Pages fetched again after a crash (<= 1).** Sources read ahead of the commit (`emitter.max_in_flight`
  events, whole pages) so that fetching overlaps committing; a crash loses the read-ahead, which is fetched
  again (never published twice: duplicates after the restart are 0). Bounding it to one page means one
  commit per page and no overlap, which costs throughput; lower `emitter.max_in_flight` and
  `emitter.batch_size` to trade throughput for fewer pages fetched again.
"""
