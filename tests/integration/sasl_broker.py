"""The SASL_SSL test broker (dev/kafka-sasl: TLS + SCRAM-SHA-512 on 127.0.0.1:19094) and helpers around it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from emitter.codec import decode
from emitter.kafka_client import assign_all, connection_options
from emitter.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "dev" / "kafka-sasl"
FAILED_AUTHENTICATION = "Failed authentication with"
"""What the broker logs (org.apache.kafka.common.network.Selector) for each refused SASL login."""


@dataclass(frozen=True)
class SaslKafka:
    """Where the SASL_SSL broker listens and how to log in to it."""

    bootstrap: str
    ca_file: Path
    username: str
    password: str
    broker_log: Path

    def __repr__(self) -> str:
        return f"SaslKafka(bootstrap={self.bootstrap!r}, username={self.username!r})"

    def failed_authentications(self) -> int:
        """How many SASL logins the broker has refused since it started."""
        text = self.broker_log.read_text(errors="replace") if self.broker_log.exists() else ""
        return text.count(FAILED_AUTHENTICATION)

    def failed_authentications_since(self, before: int, settle: float = 1.0) -> int:
        """Refusals logged after `before` was counted, once the count has stopped moving for `settle` s."""
        count, stable_since = self.failed_authentications(), time.monotonic()
        while time.monotonic() - stable_since < settle:
            time.sleep(0.1)
            now = self.failed_authentications()
            if now != count:
                count, stable_since = now, time.monotonic()
        return count - before


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def sasl_kafka() -> SaslKafka:
    """The SASL_SSL broker, started by dev/kafka-sasl if needed (never skips: a broker that cannot start fails)."""
    started = _script("start", timeout=600)
    if started.returncode != 0:
        pytest.fail(f"dev/kafka-sasl start failed (exit {started.returncode}):\n{started.stderr[-3000:]}")
    shown = _script("credentials", timeout=60)
    if shown.returncode != 0:
        pytest.fail(f"dev/kafka-sasl credentials failed:\n{shown.stderr[-3000:]}")
    values = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    broker = SaslKafka(
        bootstrap=values["bootstrap"],
        ca_file=Path(values["ca_file"]),
        username=values["username"],
        password=values["password"],
        broker_log=Path(values["broker_log"]),
    )
    assert broker.ca_file.is_file(), f"dev/kafka-sasl wrote no CA certificate at {broker.ca_file}"
    assert broker.password, "dev/kafka-sasl printed an empty password"
    return broker


def make_ca(directory: Path, name: str = "untrusted") -> Path:
    """A fresh self-signed CA certificate (PEM) that signed nothing the broker presents."""
    directory.mkdir(parents=True, exist_ok=True)
    pem, key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    extensions = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2"),
            *("-keyout", str(key), "-out", str(pem), "-subj", f"/CN={name} test CA", *extensions),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return pem


async def read_committed_secure(settings: KafkaSettings, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every committed record of `topic`, decoded, read to its end by a read_committed consumer with the
    settings' security (SASL_SSL here)."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings), isolation_level="read_committed", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic)
        if not tps:
            return []
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes, dict[str, Any]]] = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            chunk = await consumer.getmany(*pending, timeout_ms=1000)
            for records in chunk.values():
                out += [(r.key, decode(r.value)) for r in records]
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
        return out
    finally:
        await consumer.stop()
