"""The `emitter` command: parse, configure, call one library function, turn errors into exit codes.

Exit codes: 0 done, 1 a fatal runtime error (fenced, misconfigured topic, every group failed), 2 a user
mistake (bad flag or configuration), printed as one line without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from emitter.cursor import GroupCursor
from emitter.errors import ConfigError, EmitterError, FatalError
from emitter.read_budget import ReadBudget
from emitter.settings import Settings, load_settings

if TYPE_CHECKING:
    from emitter.telegram_account import Prompts

EXIT_OK, EXIT_FATAL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"emitter: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number greater than 0")
    return value


def _utc_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: expected ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# flag dest -> (section, key) of the settings it overrides
_OVERRIDES: dict[str, tuple[str, str]] = {
    "source": ("emitter", "source"),
    "sink": ("emitter", "sink"),
    "instance": ("emitter", "instance"),
    "export_path": ("emitter", "export_path"),
    "data_dir": ("emitter", "data_dir"),
    "batch_size": ("emitter", "batch_size"),
    "demo_groups": ("emitter", "demo_groups"),
    "demo_rate": ("emitter", "demo_rate"),
    "demo_history": ("emitter", "demo_history"),
    "demo_limit": ("emitter", "demo_limit"),
    "log_level": ("emitter", "log_level"),
    "bootstrap_servers": ("kafka", "bootstrap_servers"),
    "topic": ("kafka", "topic"),
    "groups": ("telegram", "groups"),
}


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="INI file (default: $EMITTER_CONFIG, then ./config.ini)")
    common.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")
    common.add_argument("--bootstrap-servers", dest="bootstrap_servers", help="Kafka brokers, host:port,…")
    common.add_argument("--topic", help="records topic (default telegram-messages)")
    common.add_argument("--instance", help="emitter identity: cursor keys and transactional id")

    parser = _Parser(prog="emitter", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="backfill and follow every configured group")
    run.add_argument("--source", help="demo, export, telegram or auto")
    run.add_argument("--sink", help="kafka, file or auto")
    run.add_argument("--export-path", dest="export_path", type=Path, help="Telegram Desktop export (result.json)")
    run.add_argument("--data-dir", dest="data_dir", type=Path, help="file sink output directory")
    run.add_argument("--batch-size", dest="batch_size", type=_positive_int, help="records per transaction")
    run.add_argument("--group", dest="groups", action="append", help="a group to monitor (repeatable)")
    run.add_argument("--demo-groups", dest="demo_groups", type=_positive_int)
    run.add_argument("--demo-rate", dest="demo_rate", type=float)
    run.add_argument("--demo-history", dest="demo_history", type=int)
    run.add_argument("--demo-limit", dest="demo_limit", type=_positive_int, help="stop each demo group after N")

    backfill = sub.add_parser("backfill", parents=[common], help="backfill a window once, with progress, then exit")
    backfill.add_argument("--source", help="demo, export, telegram or auto")
    backfill.add_argument("--sink", help="kafka, file or auto")
    backfill.add_argument("--export-path", dest="export_path", type=Path, help="Telegram Desktop export")
    backfill.add_argument("--data-dir", dest="data_dir", type=Path, help="file sink output directory")
    backfill.add_argument("--group", dest="groups", action="append", help="a group to backfill (repeatable)")
    backfill.add_argument("--start-date", dest="start_date", type=_utc_datetime, help="first date (ISO 8601, UTC)")
    backfill.add_argument("--end-date", dest="end_date", type=_utc_datetime, help="last date (ISO 8601, UTC)")
    backfill.add_argument("--after-id", dest="after_id", type=_positive_int, help="start after this message id")
    backfill.add_argument("--limit", type=_positive_int, help="at most this many messages per group")

    tail = sub.add_parser("tail", parents=[common], help="print committed records as JSON lines")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the newest")
    tail.add_argument("--group", dest="tail_group", type=int, help="only this group (marked id)")
    tail.add_argument("--max", dest="max_records", type=_positive_int, help="stop after N records")
    tail.add_argument("--idle-timeout", dest="idle_timeout", type=float, help="stop after S seconds without records")

    check = sub.add_parser(
        "check", parents=[common], help="validate the configuration, reach Kafka, check the Telegram login and groups"
    )
    check.add_argument("--source", help="demo, export, telegram or auto")
    check.add_argument("--sink", help="kafka, file or auto")
    check.add_argument("--export-path", dest="export_path", type=Path, help="Telegram Desktop export")
    check.add_argument("--group", dest="groups", action="append", help="a group to resolve (repeatable)")

    login = sub.add_parser("login", parents=[common], help="log in to Telegram once (interactive)")
    login.add_argument(
        "--print-session", action="store_true", help="print a StringSession for TELEGRAM_SESSION (keep it secret)"
    )
    groups = sub.add_parser("groups", parents=[common], help="list the account's groups and channels")
    groups.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {}
    for dest, (section, key) in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return load_settings(args.config, overrides)


def main(argv: Sequence[str] | None = None, *, prompts: Prompts | None = None) -> int:
    """Entry point of the `emitter` console script.

    Args:
        prompts: how `emitter login` asks for the phone, code and password (default: the terminal).
    """
    args = _parser().parse_args(argv)
    args.prompts = prompts
    try:
        settings = _settings(args)
        from emitter.logs import setup_logging  # noqa: PLC0415 - after settings: the level comes from them

        setup_logging(settings.emitter.log_level, settings.emitter.log_format)
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except ConfigError as e:
        print(f"emitter: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FatalError as e:
        print(f"emitter: fatal: {e}", file=sys.stderr)
        return EXIT_FATAL
    except EmitterError as e:
        print(f"emitter: failed: {e}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        return 130


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from emitter.app import run  # noqa: PLC0415 - keeps `emitter --help` fast

    stats = await run(settings)
    print(
        f"emitter: published {stats.published} events in {stats.batches} transactions; "
        f"{stats.duplicates} duplicates dropped; {len(stats.failed)} of {stats.groups} groups failed",
        file=sys.stderr,
    )
    return EXIT_FATAL if stats.groups and len(stats.failed) == stats.groups else EXIT_OK


async def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    from emitter.app import backfill  # noqa: PLC0415 - keeps `emitter --help` fast
    from emitter.progress_view import ProgressView  # noqa: PLC0415
    from emitter.protocols import Window  # noqa: PLC0415

    window = Window(args.start_date, args.end_date, args.after_id, args.limit)
    stats = await backfill(settings, window, view=ProgressView)
    print(
        f"emitter: backfilled {stats.published} events in {stats.batches} transactions; "
        f"{len(stats.failed)} of {stats.groups} groups failed",
        file=sys.stderr,
    )
    return EXIT_FATAL if stats.groups and len(stats.failed) == stats.groups else EXIT_OK


async def _tail(settings: Settings, args: argparse.Namespace) -> int:
    from emitter.consumer import tail  # noqa: PLC0415 - same

    if settings.sink_kind != "kafka":
        raise ConfigError("tail reads Kafka: set kafka.bootstrap_servers or pass --bootstrap-servers host:port")
    async for record in tail(
        settings.kafka,
        from_beginning=args.from_beginning,
        group_id=args.tail_group,
        max_records=args.max_records,
        idle_timeout=args.idle_timeout,
    ):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return EXIT_OK


async def _check(settings: Settings, args: argparse.Namespace) -> int:
    print(f"configuration: ok (source={settings.source_kind}, sink={settings.sink_kind})")
    proxy = settings.telegram.proxy_route
    if settings.source_kind == "telegram" and proxy is not None:
        required = ", required" if settings.telegram.require_proxy else ""
        print(f"proxy: {proxy.describe()}{required}")
    cursors: dict[int, GroupCursor] = {}
    if settings.sink_kind == "kafka":
        from emitter.kafka_sink import KafkaSink  # noqa: PLC0415 - same

        try:
            cursors = await KafkaSink(settings.kafka, settings.emitter.instance).verify()
        except EmitterError as e:
            raise FatalError(str(e)) from e
        print(
            f"kafka: ok ({','.join(settings.kafka.bootstrap_servers or ())}, topic {settings.kafka.topic!r}, "
            f"{len(cursors)} cursors for instance {settings.emitter.instance!r})"
        )
    if settings.source_kind != "telegram":
        return EXIT_OK
    from emitter.telegram_account import check_account  # noqa: PLC0415 - Telethon only when used

    report = await check_account(settings.telegram)
    for line in report.lines:
        print(line)
    print(_budget_line(settings, cursors))
    return EXIT_OK if report.ok else EXIT_FATAL


def _budget_line(settings: Settings, cursors: Mapping[int, GroupCursor]) -> str:
    """The read budget as the committed cursors hold it (a file sink keeps none: nothing spent is known)."""
    budget = ReadBudget(settings.telegram.read_budget_per_day)
    now = time.time()
    budget.restore({gid: cursor.reads for gid, cursor in cursors.items()}, now)
    line = budget.describe(now)
    if budget.limited and settings.sink_kind != "kafka":
        line += " (spending is kept in Kafka cursors: a file sink keeps none)"
    return line


async def _login(settings: Settings, args: argparse.Namespace) -> int:
    from emitter.telegram_account import (  # noqa: PLC0415 - Telethon only when used
        Prompts,
        login,
        open_client,
        record_login_identity,
    )

    client = open_client(settings.telegram, in_memory=args.print_session)
    try:
        who, session = await login(client, phone=settings.telegram.phone, prompts=args.prompts or Prompts())
        identity = record_login_identity(client)
    finally:
        await client.disconnect()
    print(f"logged in as {who}", file=sys.stderr)
    if args.print_session:
        print(session)
    elif settings.telegram.session is None:
        print(f"session saved in {settings.telegram.session_file or 'emitter.session'} (mode 0600)", file=sys.stderr)
    print(identity, file=sys.stderr)
    return EXIT_OK


async def _groups(settings: Settings, args: argparse.Namespace) -> int:
    from emitter.telegram_account import connect_logged_in, list_groups, open_client  # noqa: PLC0415 - same

    client = open_client(settings.telegram)
    try:
        await connect_logged_in(client)
        groups = await list_groups(client)
    finally:
        await client.disconnect()
    for g in groups:
        if args.json:
            doc = {"id": g.id, "title": g.title, "username": g.username, "type": g.type.value, "members": g.members}
            print(json.dumps(doc, ensure_ascii=False))
        else:
            members = "" if g.members is None else str(g.members)
            username = f"@{g.username}" if g.username else ""
            print(f"{g.id:>16}  {g.type.value:<10}  {members:>8}  {username:<24}  {g.title or ''}")
    return EXIT_OK


_COMMANDS = {"run": _run, "backfill": _backfill, "tail": _tail, "check": _check, "login": _login, "groups": _groups}

if __name__ == "__main__":
    raise SystemExit(main())
