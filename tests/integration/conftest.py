"""Integration fixtures: the real Kafka broker (started by dev/kafka, idempotently) and per-test topics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from emitter.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def _reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka() -> str:
    """The broker's bootstrap address; starts the local broker if nothing answers (never skips)."""
    if not _reachable(BOOTSTRAP):
        subprocess.run([str(ROOT / "dev" / "kafka"), "start"], check=True, timeout=600)
    assert _reachable(BOOTSTRAP), f"Kafka is not reachable at {BOOTSTRAP} (dev/kafka start failed)"
    return BOOTSTRAP


@pytest.fixture
def names() -> dict[str, str]:
    """Fresh topic and identity names, so tests never see each other's records."""
    tag = uuid.uuid4().hex[:10]
    return {
        "topic": f"t-{tag}",
        "cursor_topic": f"c-{tag}",
        "instance": f"i-{tag}",
        "prefix": f"te-{tag}",
    }


@pytest.fixture
def settings(kafka: str, names: dict[str, str], tmp_path: Path) -> Settings:
    """Settings for the local broker with this test's topics."""
    return load_settings(
        None,
        {
            "kafka": {
                "bootstrap_servers": kafka,
                "topic": names["topic"],
                "cursor_topic": names["cursor_topic"],
                "transactional_id_prefix": names["prefix"],
                "partitions": 2,
            },
            "emitter": {"instance": names["instance"], "data_dir": tmp_path / "data"},
        },
    )


@pytest.fixture
def cli_env(kafka: str, names: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Environment for `emitter` subprocesses aimed at this test's topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMITTER_", "TELEGRAM_"))}
    env.update(
        {
            "EMITTER_KAFKA__BOOTSTRAP_SERVERS": kafka,
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


def emitter_cmd(*args: str) -> list[str]:
    """The command line of the `emitter` console script, run by this interpreter."""
    return [sys.executable, "-m", "emitter.cli", *args]


REGISTRY_PORT = int(os.environ.get("TEST_REGISTRY_PORT", "28081"))


@pytest.fixture(scope="session")
def registry() -> str:
    """The schema registry's Confluent-compatible URL, started through dev/registry (idempotent, never skips)."""
    env = dict(os.environ, REGISTRY_PORT=str(REGISTRY_PORT))
    subprocess.run([str(ROOT / "dev" / "registry"), "start"], check=True, timeout=600, env=env)
    assert _reachable(f"127.0.0.1:{REGISTRY_PORT}"), f"no schema registry on 127.0.0.1:{REGISTRY_PORT}"
    return f"http://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7"
