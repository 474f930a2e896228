"""Extract, transform, load: a group's new messages into a SQL table, as an Airflow DAG would run them.

The three steps are plain functions, so they run anywhere; in Airflow wrap each in ``@task``::

    from airflow.decorators import dag, task

    @dag(schedule="@hourly", catchup=False)
    def telegram_etl():
        rows = task(lambda: asyncio.run(extract_with_config("@somechannel", "/data/tracker.db")))()
        task(load)(task(transform)(rows), "/data/warehouse.db")

Extraction is incremental and lossless: a SQLite tracker keeps the group's cursor between runs, and each run
walks history ascending from it (`poll_for_messages` with one iteration). Loading is idempotent (an upsert
keyed by group and message id), so a retried task never duplicates rows.

    python -m examples.airflow_etl @somechannel --tracker tracker.db --warehouse warehouse.db
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emitter.tgdata import Row, TgData, json_rows
from emitter.trackers import SqliteTracker

COLUMNS = ("GroupId", "MessageId", "Date", "SenderId", "SenderName", "Message", "ReplyToId", "MediaType", "Length")


async def extract(tg: TgData, group: int | str, after_id: int | None = 0) -> list[Row]:
    """The group's messages that no earlier run extracted (the first run: those after `after_id`)."""
    rows: list[Row] = []
    await tg.poll_for_messages(
        group, callback=lambda new: rows.extend(json_rows(new)), max_iterations=1, after_id=after_id
    )
    return rows


async def extract_with_config(group: int | str, tracker: str | Path, config_file: str | None = None) -> list[Row]:
    """`extract` with a TgData from the INI file and a SQLite tracker (what a scheduled task runs)."""
    async with TgData(config_file, tracker=SqliteTracker(tracker)) as tg:
        return await extract(tg, group)


def transform(rows: Iterable[Row]) -> list[Row]:
    """Keep real messages (no service messages), with the columns of the table and the text length."""
    out = []
    for row in rows:
        if row.get("Action") is not None:
            continue
        text = row.get("Message") or ""
        out.append({**{c: row.get(c) for c in COLUMNS}, "Message": text, "Length": len(text)})
    return out


def load(rows: Iterable[Row], warehouse: str | Path) -> int:
    """Upsert the rows into the `telegram_messages` table; returns how many rows the table holds."""
    with sqlite3.connect(warehouse) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS telegram_messages ("
            "GroupId INTEGER, MessageId INTEGER, Date TEXT, SenderId INTEGER, SenderName TEXT, Message TEXT, "
            "ReplyToId INTEGER, MediaType TEXT, Length INTEGER, PRIMARY KEY (GroupId, MessageId))"
        )
        marks = ", ".join("?" for _ in COLUMNS)
        db.executemany(
            f"INSERT OR REPLACE INTO telegram_messages ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608 - fixed names
            [tuple(_value(row[c]) for c in COLUMNS) for row in rows],
        )
        (count,) = db.execute("SELECT COUNT(*) FROM telegram_messages").fetchone()
    db.close()
    return int(count)


def _value(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str) else str(value)


def main(argv: list[str] | None = None) -> int:
    """One ETL run for one group."""
    parser = argparse.ArgumentParser(description="Telegram messages into a SQL table, incrementally")
    parser.add_argument("group", help="marked id or @username")
    parser.add_argument("--tracker", default="tracker.db")
    parser.add_argument("--warehouse", default="warehouse.db")
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    group = int(args.group) if args.group.lstrip("-").isdigit() else args.group
    rows = asyncio.run(extract_with_config(group, args.tracker, args.config))
    total = load(transform(rows), args.warehouse)
    print(f"extracted {len(rows)} messages; the table holds {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
