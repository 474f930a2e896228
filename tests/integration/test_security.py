"""SASL_SSL with SCRAM-SHA-512 against a real broker (dev/kafka-sasl): exactly-once publishing, refusals, secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emitter.demo_source import demo_group
from emitter.kafka_sink import KafkaSink
from emitter.settings import load_settings
from tests.integration.conftest import emitter_cmd
from tests.integration.sasl_broker import SaslKafka, make_ca, read_committed_secure, sasl_kafka

__all__ = ["sasl_kafka"]  # the session fixture, imported so that pytest finds it

FAIL_WITHIN = 30.0
"""Seconds within which a refused emitter must have exited."""
MAX_AUTH_ATTEMPTS = 3
"""SASL logins a refused emitter may try before it gives up: a few, never a retry storm."""
LIMIT = 300
"""Messages per demo group: 250 of history (backfill), then 50 live."""


def _env(
    broker: SaslKafka, names: dict[str, str], *, password: str | None = None, ca_file: Path | None = None
) -> dict[str, str]:
    """An environment for `emitter` subprocesses that talks SASL_SSL to the test broker, on this test's topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMITTER_", "TELEGRAM_"))}
    env.update(
        {
            "EMITTER_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "EMITTER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "EMITTER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "EMITTER_KAFKA__SASL_USERNAME": broker.username,
            "EMITTER_KAFKA__SASL_PASSWORD": broker.password if password is None else password,
            "EMITTER_KAFKA__SSL_CAFILE": str(broker.ca_file if ca_file is None else ca_file),
            "EMITTER_KAFKA__TOPIC": names["topic"],
            "EMITTER_KAFKA__CURSOR_TOPIC": names["cursor_topic"],
            "EMITTER_KAFKA__TRANSACTIONAL_ID_PREFIX": names["prefix"],
            "EMITTER_KAFKA__PARTITIONS": "2",
            "EMITTER_EMITTER__INSTANCE": names["instance"],
            "EMITTER_EMITTER__SOURCE": "demo",  # auto refuses demo data into Kafka; these tests mean it
            "EMITTER_EMITTER__LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _overrides(broker: SaslKafka, names: dict[str, str], tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The same configuration as `_env`, for in-process settings."""
    return {
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": broker.username,
            "sasl_password": broker.password,
            "ssl_cafile": broker.ca_file,
            "topic": names["topic"],
            "cursor_topic": names["cursor_topic"],
            "transactional_id_prefix": names["prefix"],
            "partitions": 2,
        },
        "emitter": {"instance": names["instance"], "data_dir": tmp_path / "data"},
    }


def _demo_run(env: dict[str, str], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ("run", "--source", "demo", "--demo-groups", "2", "--demo-history", "250", "--demo-rate", "200")
    args += ("--demo-limit", str(LIMIT), "--batch-size", "50", "--data-dir", str(tmp_path / "data"), *extra)
    return subprocess.run(emitter_cmd(*args), env=env, capture_output=True, text=True, timeout=180)


def _published(stderr: str) -> int:
    found = re.search(r"emitter: published (\d+) events", stderr)
    assert found, stderr[-2000:]
    return int(found.group(1))


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _leaks(secret: str, *texts: str) -> bool:
    """Whether `secret` appears in any text (a bare bool, so a failing assertion does not print the secret)."""
    return any(secret in text for text in texts)


async def test_emitter_publishes_exactly_once_over_sasl_ssl(
    sasl_kafka: SaslKafka, names: dict[str, str], tmp_path: Path
) -> None:
    """The CLI publishes over SASL_SSL and a read_committed SASL_SSL consumer reads each message exactly once."""
    env = _env(sasl_kafka, names)
    first = _demo_run(env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    published = _published(first.stderr)

    settings = load_settings(None, _overrides(sasl_kafka, names, tmp_path))
    records = await read_committed_secure(settings.kafka, names["topic"])
    assert len(records) == published
    events = Counter((int(key), r["event_type"], r["message_id"]) for key, r in records)
    assert max(events.values()) == 1, "some event was read more than once"
    groups = {demo_group(1).id, demo_group(2).id}
    for key, record in records:
        assert int(key) == record["group"]["id"] in groups
    new_ids = {
        gid: [r["message_id"] for k, r in records if int(k) == gid and r["event_type"] == "NEW"] for gid in groups
    }
    assert new_ids == {gid: list(range(1, LIMIT + 1)) for gid in groups}

    cursors = await KafkaSink(settings.kafka, names["instance"]).verify()
    assert {gid: c.cursor for gid, c in cursors.items()} == dict.fromkeys(groups, LIMIT)

    again = _demo_run(env, tmp_path)  # restores the cursors over SASL_SSL: nothing is published twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert _published(again.stderr) == 0
    assert len(await read_committed_secure(settings.kafka, names["topic"])) == published
    print(f"published {published} events over SASL_SSL; re-run published 0")


@pytest.mark.parametrize("command", ["run", "check"])
def test_wrong_password_fails_fast_with_one_clear_line(
    sasl_kafka: SaslKafka, names: dict[str, str], tmp_path: Path, command: str
) -> None:
    """A refused password: exit 1 within 30 s, a last line naming the user, no traceback, no retry storm, no secret."""
    wrong = "wrong-" + os.urandom(8).hex()
    env = _env(sasl_kafka, names, password=wrong)
    before = sasl_kafka.failed_authentications()
    started = time.monotonic()
    args = [command, "--log-level", "DEBUG"]
    if command == "run":
        args += ["--source", "demo", "--demo-limit", "10", "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(emitter_cmd(*args), env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    attempts = sasl_kafka.failed_authentications_since(before)

    assert done.returncode == 1, done.stderr[-3000:]
    assert elapsed < FAIL_WITHIN, f"took {elapsed:.1f} s to give up"
    last = _last_line(done.stderr)
    assert last.startswith("emitter: fatal: "), done.stderr[-3000:]
    assert f"user {sasl_kafka.username!r}" in last and "refused the SASL credentials" in last, last
    assert "Traceback" not in done.stderr
    assert 1 <= attempts <= MAX_AUTH_ATTEMPTS, f"{attempts} SASL logins refused by the broker"
    assert not _leaks(wrong, done.stdout, done.stderr), "the wrong password appears in the output"
    assert not _leaks(sasl_kafka.password, done.stdout, done.stderr), "the real password appears in the output"
    print(f"{command}: exit 1 after {elapsed:.2f} s, {attempts} refused logins; {last}")


def test_untrusted_ca_fails_with_one_clear_line(sasl_kafka: SaslKafka, names: dict[str, str], tmp_path: Path) -> None:
    """A CA file that did not sign the broker's certificate: exit 1 within 30 s, one line naming the CA file."""
    other_ca = make_ca(tmp_path / "tls")
    env = _env(sasl_kafka, names, ca_file=other_ca)
    started = time.monotonic()
    done = subprocess.run(
        emitter_cmd("run", "--source", "demo", "--demo-limit", "10", "--data-dir", str(tmp_path / "data")),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started

    assert done.returncode == 1, done.stderr[-3000:]
    assert elapsed < FAIL_WITHIN, f"took {elapsed:.1f} s to give up"
    last = _last_line(done.stderr)
    assert last.startswith("emitter: fatal: "), done.stderr[-3000:]
    assert "TLS certificate" in last and str(other_ca) in last, last
    assert "Traceback" not in done.stderr
    assert not _leaks(sasl_kafka.password, done.stdout, done.stderr), "the password appears in the output"
    print(f"untrusted CA: exit 1 after {elapsed:.2f} s; {last}")


def test_password_never_in_debug_logs_nor_in_repr(
    sasl_kafka: SaslKafka, names: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A successful SASL_SSL run at DEBUG with JSON logs, and the settings' repr, never show the password."""
    done = _demo_run(_env(sasl_kafka, names), tmp_path, "--log-level", "DEBUG")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not _leaks(sasl_kafka.password, done.stdout, done.stderr), "the password appears in the DEBUG output"
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(doc["level"] == "DEBUG" for doc in logs), "no DEBUG line: the log level did not apply"
    assert _published(done.stderr) > 0

    monkeypatch.setenv("EMITTER_KAFKA__SASL_PASSWORD", sasl_kafka.password)
    overrides = _overrides(sasl_kafka, names, tmp_path)
    del overrides["kafka"]["sasl_password"]
    settings = load_settings(None, overrides)  # the password comes from the environment, as in production
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == sasl_kafka.password
    shown = [
        repr(settings),
        str(settings),
        repr(settings.kafka),
        settings.model_dump_json(),
        repr(KafkaSink(settings.kafka, names["instance"])),
    ]
    assert not _leaks(sasl_kafka.password, *shown), "the password appears in a repr of the settings"
    print(f"{len(logs)} JSON log lines at DEBUG, none with the password")
