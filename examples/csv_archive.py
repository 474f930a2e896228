"""Archive a group's history as CSV files laid out like object-store keys, one file per run.

Each run writes only what is new since the previous one, to
``<root>/groups/<group id>/messages_<UTC time>.csv``; a SQLite tracker in the root remembers where the
last run stopped (its cursor), so nothing is skipped and nothing is written twice. To archive to S3
instead of a local directory, upload each file the same way::

    boto3.client("s3").upload_file(str(path), "telegram-archives", str(path.relative_to(root)))

    python -m examples.csv_archive @somechannel --root archive
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from emitter.tgdata import Row, TgData, json_rows
from emitter.trackers import SqliteTracker


def archive_path(root: Path, group_id: int, when: datetime) -> Path:
    """Where a run's file goes: groups/<group id>/messages_<YYYYmmddTHHMMSSffffffZ>.csv under `root`."""
    return root / "groups" / str(group_id) / f"messages_{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.csv"


async def archive(tg: TgData, group: int | str, root: Path, *, now: datetime | None = None) -> Path | None:
    """Write the group's messages that no earlier run archived; the file written, or None if none were new."""
    rows: list[Row] = []
    await tg.poll_for_messages(group, callback=lambda new: rows.extend(json_rows(new)), max_iterations=1, after_id=0)
    if not rows:
        return None
    path = archive_path(root, int(rows[0]["GroupId"]), now or datetime.now(UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    return tg.export_messages(rows, path, format="csv")


async def archive_with_config(group: int | str, root: Path, config_file: str | None = None) -> Path | None:
    """`archive` with a TgData from the INI file and the archive's own tracker (`<root>/tracker.db`)."""
    async with TgData(config_file, tracker=SqliteTracker(root / "tracker.db")) as tg:
        return await archive(tg, group, root)


def main(argv: list[str] | None = None) -> int:
    """One archive run for one group."""
    parser = argparse.ArgumentParser(description="Archive a Telegram group to CSV files")
    parser.add_argument("group", help="marked id or @username")
    parser.add_argument("--root", type=Path, default=Path("archive"))
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    group = int(args.group) if args.group.lstrip("-").isdigit() else args.group
    written = asyncio.run(archive_with_config(group, args.root, args.config))
    print(written or "nothing new")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
