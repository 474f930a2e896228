"""Scenario 6: the hot path: scenario 1's emitter backfill once under a sampling profiler.

pyinstrument samples the event loop's thread every millisecond (async mode off: every sample is charged to
the frame actually running, C functions included, and the loop's idle `epoll.poll` shows as such). Own time
is summed per function over the whole call tree; C functions are also charged to their caller's area, and
a few pipeline stages get their inclusive time. Without pyinstrument, cProfile's tottime stands in.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.common import ROOT, Backfill, Context, build_world, log, run, telegram_backfill
from bench.report import Row, fmt

NAME = "6 profile"
TOP: Final = 15
_BUILTIN: Final = "<built-in>"
_FAKE: Final = "fake Telegram server (not in production)"
_AREAS: Final = (
    ("/tests/faketelegram/world.py", _FAKE),
    ("/tests/faketelegram/_tl.py", _FAKE),
    ("/tests/faketelegram/", "fake Telegram connection (stands in for the socket)"),
    ("/telethon/", "Telethon (client: parsing, pagination, custom messages)"),
    ("/emitter/", "emitter"),
    ("/aiokafka/", "aiokafka"),
    ("/fastavro/", "fastavro"),
    ("/opentelemetry/", "OpenTelemetry"),
    ("/asyncio/", "asyncio"),
    ("/selectors.py", "asyncio"),
)
_STAGES: Final = (
    ("Telethon: parse answers (recv loop)", "_recv_loop", "/tests/faketelegram/sender.py"),
    ("emitter: history pages (getHistory, no Telethon finishing)", "history_pages", "/emitter/telegram_history.py"),
    ("emitter: map_message", "map_message", "/emitter/telegram_mapping.py"),
    ("emitter: Encoder.encode (the generated writer)", "encode", "/emitter/codec.py"),
    ("emitter: Tracker.accept", "accept", "/emitter/tracker.py"),
    ("emitter: KafkaSink._send_transaction", "_send_transaction", "/emitter/kafka_sink.py"),
    ("aiokafka: AIOKafkaProducer.send (per record)", "send", "/aiokafka/producer/producer.py"),
    ("aiokafka: sender loop (requests, transactions)", "_sender_routine", "/aiokafka/producer/sender.py"),
    ("fake server: answer requests", "_transmit", "/tests/faketelegram/world.py"),
)
"""(label, function, file) whose inclusive time is reported; nested calls of the same stage count once."""

Key = tuple[str, str, int]
"""(function, file, first line) of one profiled function."""


@dataclass
class Profile:
    """What the report needs from a profiler, whichever ran."""

    tool: str
    total: float
    own: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    areas: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    callers: dict[Key, dict[Key, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    """For C functions: own time by the Python function that called them."""
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def scenario(ctx: Context) -> list[Row]:
    """Profile one backfill; the top functions go to the report's "Hot path" section."""
    n = ctx.sizes.profile
    fake, groups = build_world(1, n, prefix="prof")
    log(f"profile: backfill of {n:,} messages under the profiler")
    try:
        result, profile = _pyinstrument(ctx, fake, groups)
    except ImportError:
        result, profile = _cprofile(ctx, fake, groups)
    del fake
    gc.collect()
    ctx.sections["Hot path"] = _section(profile, n, result)
    ctx.note(
        NAME, f"Scenario 1's emitter backfill ({n:,} messages, 1 channel) once under {profile.tool}; see Hot path."
    )
    (top, seconds), *_ = sorted(profile.own.items(), key=lambda kv: kv[1], reverse=True)
    emitter = profile.areas.get("emitter", 0.0)
    return [
        Row(NAME, f"emitter backfill under {profile.tool} (see Hot path)", f"{fmt(result.rate)} rec/s"),
        Row(NAME, f"top own time: {top[0]} ({_where(top)})", f"{seconds / profile.total:.1%}"),
        Row(
            NAME,
            "own time in emitter/ code (the rest: Telethon, aiokafka, fake, loop)",
            f"{emitter / profile.total:.1%}",
        ),
    ]


def _pyinstrument(ctx: Context, fake: Any, groups: list[str]) -> tuple[Backfill, Profile]:
    from pyinstrument import Profiler  # noqa: PLC0415 - optional: cProfile stands in without it

    profiler = Profiler(interval=0.001, async_mode="disabled")

    async def profiled() -> Backfill:
        profiler.start()
        try:
            return await telegram_backfill(fake, groups, ctx.fresh_settings())
        finally:
            profiler.stop()

    result = run(profiled())
    root = profiler.last_session.root_frame() if profiler.last_session else None
    if root is None:
        raise RuntimeError("pyinstrument recorded nothing")
    profile = Profile("pyinstrument", root.time)
    stack: list[tuple[Any, str, Key | None, frozenset[str]]] = [(root, "other", None, frozenset())]
    while stack:
        frame, area, caller, inside = stack.pop()
        key: Key = (frame.function, frame.file_path or _BUILTIN, frame.line_no or 0)
        builtin = key[1] == _BUILTIN
        if not builtin:
            # The fake server's work (building and serialising answers, in Telethon's TL code too) is the
            # fake's, whoever's code runs it; everything else belongs to the code that runs.
            area = area if area == _FAKE else _area(key[1])
        for label, function, path in _STAGES:
            if label not in inside and frame.function == function and path in key[1]:
                profile.stages[label] += frame.time
                inside |= {label}
        if not frame.is_synthetic:
            profile.own[key] += frame.total_self_time
            profile.areas[area] += frame.total_self_time
            if builtin and caller is not None:
                profile.callers[key][caller] += frame.total_self_time
        for child in frame.children:
            stack.append((child, area, caller if builtin else key, inside))
    return result, profile


def _cprofile(ctx: Context, fake: Any, groups: list[str]) -> tuple[Backfill, Profile]:
    profiler = cProfile.Profile()

    async def profiled() -> Backfill:
        profiler.enable()
        try:
            return await telegram_backfill(fake, groups, ctx.fresh_settings())
        finally:
            profiler.disable()

    result = run(profiled())
    stats: Any = getattr(pstats.Stats(profiler), "stats")  # noqa: B009 - present at runtime, absent from typeshed
    profile = Profile("cProfile", 0.0)
    for (file, line, func), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        profile.own[(func, file, line)] += tottime
        profile.areas[_area(file)] += tottime
        profile.total += tottime
    return result, profile


def _where(key: Key) -> str:
    """file:line, relative to the repository or to site-packages."""
    _func, file, line = key
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif file.startswith(str(ROOT)):
        file = str(Path(file).relative_to(ROOT))
    elif "/lib/python3" in file:
        file = "stdlib/" + file.split("/lib/python3", 1)[1].split("/", 1)[1]
    return f"{file}:{line}" if line else file


def _area(file: str) -> str:
    for marker, area in _AREAS:
        if marker in file:
            return area
    return "other"


def _section(profile: Profile, n: int, result: Backfill) -> str:
    total = profile.total
    ranked = sorted(profile.own.items(), key=lambda kv: kv[1], reverse=True)
    lines = [
        f"{profile.tool}, one backfill of {n:,} messages (1 channel, real path), {fmt(result.rate)} rec/s under "
        f"the profiler; {total:.1f} s sampled. Own time = time in the function itself, not in what it calls "
        "(C functions such as fastavro's writer are charged to the Python function calling them unless the "
        "profiler sees them, as pyinstrument does for built-ins); `epoll.poll` is the loop waiting.",
        "",
        "| # | function | where | own time | share |",
        "|---|---|---|---|---|",
    ]
    for i, (key, seconds) in enumerate(ranked[:TOP], 1):
        where = _where(key)
        callers = profile.callers.get(key)
        if callers:
            caller, share = max(callers.items(), key=lambda kv: kv[1])
            where = f"built-in; {share / seconds:.0%} from {caller[0]} ({_where(caller)})"
        lines.append(f"| {i} | `{key[0]}` | {where} | {seconds:.2f} s | {seconds / total:.1%} |")
    lines += ["", "Own time by area (C functions charged to their caller's area):", ""]
    lines += ["| area | own time | share |", "|---|---|---|"]
    lines += [
        f"| {area} | {seconds:.2f} s | {seconds / total:.1%} |"
        for area, seconds in sorted(profile.areas.items(), key=lambda kv: kv[1], reverse=True)
    ]
    if profile.stages:
        lines += ["", "Inclusive time of pipeline stages (what each costs with everything it calls):", ""]
        lines += ["| stage | inclusive time | share |", "|---|---|---|"]
        lines += [
            f"| {label} | {profile.stages[label]:.2f} s | {profile.stages[label] / total:.1%} |"
            for label, *_ in _STAGES
        ]
    return "\n".join(lines)
