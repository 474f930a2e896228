"""The examples/ programs against the in-process Telegram (the Kafka consumer is in the integration tests)."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import os
import py_compile
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from emitter.tgdata import TgData
from emitter.trackers import SqliteTracker
from examples import airflow_etl, csv_archive, otel_subclass, prometheus_progress
from tests.faketelegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if p.stem != "__init__")


@pytest.fixture
def fake() -> FakeTelegram:
    """A channel with 120 posts."""
    world = FakeTelegram(seed=5)
    world.post_many(world.add_channel("News", username="news"), 120)
    return world


@pytest.fixture
async def tg(fake: FakeTelegram, tmp_path: Path) -> AsyncIterator[TgData]:
    """TgData on the fake world with a SQLite tracker."""
    async with TgData(client=fake.client(), tracker=SqliteTracker(tmp_path / "tracker.db")) as client:
        yield client


@pytest.fixture
def telegram_env(fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The environment a deployed example runs with, its client wired to the fake world."""
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TELEGRAM_SESSION", fake.new_session().save())
    with fake.patch_telethon():
        yield


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_compiles_and_has_a_main(name: str) -> None:
    """Each example compiles; those whose optional dependencies are installed import and offer main()."""
    py_compile.compile(str(ROOT / "examples" / f"{name}.py"), doraise=True)
    if name == "fastapi_app" and importlib.util.find_spec("fastapi") is None:
        return  # type-checked only (mypy --strict examples): fastapi is not a dependency
    module = importlib.import_module(f"examples.{name}")
    assert callable(module.main)


async def test_etl_extracts_incrementally_and_loads_idempotently(
    tg: TgData, fake: FakeTelegram, tmp_path: Path
) -> None:
    """Extract gets only what is new since the last run; load upserts, so a repeated load adds nothing."""
    warehouse = tmp_path / "warehouse.db"
    first = await airflow_etl.extract(tg, "@news")
    assert airflow_etl.load(airflow_etl.transform(first), warehouse) == 120, "the service message is dropped"
    assert airflow_etl.load(airflow_etl.transform(first), warehouse) == 120
    fake.post_many("@news", 30)
    second = await airflow_etl.extract(tg, "@news")
    assert [r["MessageId"] for r in second] == fake.message_ids("@news")[-30:]
    assert airflow_etl.load(airflow_etl.transform(second), warehouse) == 150
    with sqlite3.connect(warehouse) as db:
        length, date = db.execute("SELECT Length, Date FROM telegram_messages WHERE MessageId = 2").fetchone()
    db.close()
    assert length == len("message 0")
    assert datetime.fromisoformat(date).tzinfo is not None


def test_etl_main_runs_from_the_environment(
    telegram_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m examples.airflow_etl @news` extracts and loads with the configured account."""
    assert airflow_etl.main(["@news", "--tracker", str(tmp_path / "t.db"), "--warehouse", str(tmp_path / "w.db")]) == 0
    assert "extracted 121 messages; the table holds 120" in capsys.readouterr().out


async def test_csv_archive_writes_each_message_once(tg: TgData, fake: FakeTelegram, tmp_path: Path) -> None:
    """Each run archives only what is new, to groups/<id>/messages_<time>.csv; a quiet run writes nothing."""
    root = tmp_path / "archive"
    first = await csv_archive.archive(tg, "@news", root, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert first == root / "groups" / str(fake.peer_id("@news")) / "messages_20260102T030405000000Z.csv"
    assert await csv_archive.archive(tg, "@news", root) is None
    fake.post_many("@news", 5)
    second = await csv_archive.archive(tg, "@news", root)
    assert second is not None
    ids = []
    for path in (first, second):
        with path.open(encoding="utf-8") as f:
            ids += [int(r["MessageId"]) for r in csv.DictReader(f)]
    assert ids == fake.message_ids("@news")


def test_csv_archive_main(telegram_env: None, tmp_path: Path) -> None:
    """`python -m examples.csv_archive @news --root DIR` writes one file under DIR/groups/."""
    assert csv_archive.main(["@news", "--root", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a" / "groups").rglob("messages_*.csv"))) == 1


async def test_traced_subclass_records_its_spans(fake: FakeTelegram) -> None:
    """The TgData subclass wraps reads in spans carrying the group, the limit and the row count."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with otel_subclass.TracedTgData(client=fake.client(), tracer=provider.get_tracer("test")) as tg:
        rows = await tg.get_messages("@news", limit=10)
        assert await tg.get_message_count("@news") == 121
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert len(rows) == 10
    assert spans["telegram.get_messages"].attributes == {
        "telegram.group": "@news",
        "telegram.limit": 10,
        "telegram.message_count": 10,
    }
    assert spans["telegram.get_message_count"].attributes["telegram.message_count"] == 121  # type: ignore[index]
    provider.shutdown()


async def test_progress_gauges_follow_the_read(tg: TgData) -> None:
    """The progress callback sets the gauges: 121 of 121 read, a positive rate, ratio 1."""
    registry = CollectorRegistry()
    rows = await prometheus_progress.fetch_with_metrics(tg, "@news", registry)
    assert len(rows) == 121

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"group": "@news"})

    assert value("telegram_fetch_messages") == 121
    assert value("telegram_fetch_total_messages") == 121
    assert value("telegram_fetch_progress_ratio") == 1.0
    assert (value("telegram_fetch_rate") or 0) > 0


@pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="fastapi is optional (type-checked only)")
def test_fastapi_app_serves_messages(fake: FakeTelegram) -> None:
    """The REST example lists groups and serves messages and counts as JSON."""
    from fastapi.testclient import TestClient  # noqa: PLC0415 - optional

    from examples import fastapi_app  # noqa: PLC0415 - optional

    with TestClient(fastapi_app.create_app(TgData(client=fake.client()))) as http:
        assert http.get("/groups").json()[0]["Username"] == "@news"
        assert [m["MessageId"] for m in http.get("/groups/news/messages?limit=3").json()] == [119, 120, 121]
        assert http.get(f"/groups/{fake.peer_id('@news')}/count").json() == {"count": 121}
