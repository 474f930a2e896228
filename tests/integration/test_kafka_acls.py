"""A broker with ACLs (dev/kafka-sasl in ACL mode, StandardAuthorizer, on 127.0.0.1:29094): the emitter runs
without CREATE on pre-created topics, and a missing ACL or topic stops it with one line naming it."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from emitter.kafka_client import connection_options
from emitter.settings import load_settings
from tests.integration.conftest import ROOT, emitter_cmd

STATE = Path(os.environ.get("EMITTER_CACHE", Path.home() / ".cache" / "telegram-emitter")) / "kafka-issue13-acl"
ENV = {
    "KAFKA_SASL_ACLS": "1",
    "KAFKA_SASL_PORT": "29094",
    "KAFKA_SASL_INTERNAL_PORT": "29095",
    "KAFKA_SASL_CONTROLLER_PORT": "29096",
    "KAFKA_SASL_STATE_DIR": str(STATE),
}
FAIL_WITHIN = 60.0


def _script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "dev" / "kafka-sasl"), *args],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def acl_broker() -> Iterator[dict[str, str]]:
    """The ACL broker's credentials; user 'emitter' may use topics `acl-*` fully (no CREATE), topics `ro-*`
    read-only, and transactional ids `acl-*`."""
    was_running = _script("status", timeout=60).returncode == 0
    started = _script("start")
    assert started.returncode == 0, started.stderr[-3000:]
    values = dict(line.split("=", 1) for line in _script("credentials", timeout=60).stdout.splitlines() if "=" in line)
    user = f"User:{values['username']}"
    reads = ("--operation", "Read", "--operation", "Describe", "--operation", "DescribeConfigs")
    writes = ("--operation", "Write", "--operation", "Describe")
    for grant in (
        (*reads, "--resource-pattern-type", "prefixed", "--topic", "acl-", "--topic", "ro-"),
        (*writes, "--resource-pattern-type", "prefixed", "--topic", "acl-", "--transactional-id", "acl-"),
    ):
        done = _script("grant", "--add", "--allow-principal", user, *grant, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
    try:
        yield values
    finally:
        if not was_running:
            _script("stop", timeout=120)


def _kafka_settings(broker: dict[str, str], *, admin: bool = False) -> dict[str, object]:
    user, password = ("admin_username", "admin_password") if admin else ("username", "password")
    return {
        "bootstrap_servers": broker["bootstrap"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": broker[user],
        "sasl_password": broker[password],
        "ssl_cafile": broker["ca_file"],
    }


async def _create(broker: dict[str, str], *topics: NewTopic) -> None:
    """Create topics as the admin (the emitter's user may not)."""
    settings = load_settings(None, {"kafka": _kafka_settings(broker, admin=True)})
    admin = AIOKafkaAdminClient(**connection_options(settings.kafka))
    await admin.start()
    try:
        response = await admin.create_topics(list(topics))
        assert all(code == 0 for _, code, _ in response.topic_errors), response.topic_errors
    finally:
        await admin.close()


def _run(broker: dict[str, str], topic: str, cursor_topic: str, tmp_path: Path, **extra: str) -> tuple[int, str, float]:
    """`emitter run` on the demo source as user 'emitter'; exit code, stderr, seconds."""
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMITTER_", "TELEGRAM_"))}
    env.update({f"EMITTER_KAFKA__{k.upper()}": str(v) for k, v in _kafka_settings(broker).items()})
    env.update(
        {
            "EMITTER_KAFKA__TOPIC": topic,
            "EMITTER_KAFKA__CURSOR_TOPIC": cursor_topic,
            "EMITTER_KAFKA__TRANSACTIONAL_ID_PREFIX": f"acl-{tag}",
            "EMITTER_EMITTER__INSTANCE": f"i-{tag}",
            "PYTHONUNBUFFERED": "1",
            **{f"EMITTER_KAFKA__{k.upper()}": v for k, v in extra.items()},
        }
    )
    args = ("run", "--source", "demo", "--demo-groups", "2", "--demo-history", "100", "--demo-limit", "120")
    started = time.monotonic()
    done = subprocess.run(
        emitter_cmd(*args, "--data-dir", str(tmp_path / "data")), env=env, capture_output=True, text=True, timeout=180
    )
    return done.returncode, done.stderr, time.monotonic() - started


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


async def test_runs_without_create_on_precreated_topics(acl_broker: dict[str, str], tmp_path: Path) -> None:
    """Without the CREATE ACL, topics an admin made beforehand are used as they are: the run succeeds."""
    tag = uuid.uuid4().hex[:8]
    topic, cursors = f"acl-t-{tag}", f"acl-c-{tag}"
    await _create(
        acl_broker, NewTopic(topic, 2, 1), NewTopic(cursors, 1, 1, topic_configs={"cleanup.policy": "compact"})
    )
    code, err, seconds = _run(acl_broker, topic, cursors, tmp_path)
    assert code == 0, err[-3000:]
    published = re.search(r"published (\d+) events", err)
    assert published and int(published.group(1)) >= 240, err[-2000:]
    assert "created topic" not in err
    print(f"no CREATE: exit 0 in {seconds:.1f} s; {_last_line(err)}")


async def test_without_write_exits_naming_the_acl(acl_broker: dict[str, str], tmp_path: Path) -> None:
    """Without WRITE on the records topic: exit 1, one line naming the user, the topic and the ACL."""
    tag = uuid.uuid4().hex[:8]
    topic, cursors = f"ro-t-{tag}", f"acl-c-{tag}"
    await _create(
        acl_broker, NewTopic(topic, 2, 1), NewTopic(cursors, 1, 1, topic_configs={"cleanup.policy": "compact"})
    )
    code, err, seconds = _run(acl_broker, topic, cursors, tmp_path)
    last = _last_line(err)
    assert code == 1, err[-3000:]
    assert seconds < FAIL_WITHIN
    assert last.startswith("emitter: fatal: Kafka denied user 'emitter' WRITE on topic"), last
    assert repr(topic) in last and "ACL" in last
    assert "Traceback" not in err
    assert acl_broker["password"] not in err
    print(f"no WRITE: exit {code} in {seconds:.1f} s; {last}")


@pytest.mark.parametrize("create", ["true", "false"])
async def test_missing_topic_exits_naming_it(acl_broker: dict[str, str], tmp_path: Path, create: str) -> None:
    """A missing records topic: exit 1 naming it, whether creation is forbidden by the setting or by the ACLs."""
    tag = uuid.uuid4().hex[:8]
    topic, cursors = f"acl-t-{tag}", f"acl-c-{tag}"
    await _create(acl_broker, NewTopic(cursors, 1, 1, topic_configs={"cleanup.policy": "compact"}))
    code, err, seconds = _run(acl_broker, topic, cursors, tmp_path, create_topics=create)
    last = _last_line(err)
    assert code == 1, err[-3000:]
    assert repr(topic) in last, last
    assert ("kafka.create_topics = false" in last) if create == "false" else ("denied creating topic" in last), last
    assert "Traceback" not in err
    print(f"missing topic, create_topics={create}: exit {code} in {seconds:.1f} s; {last}")
