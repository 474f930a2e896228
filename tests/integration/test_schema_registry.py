"""Confluent framing against the real schema registry (Apicurio, dev/registry): what the emitter registers,
what the ecosystem's readers make of it, and how refusals and outages read."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from emitter.codec import confluent_schema_id, decode, message_schema
from emitter.errors import FatalError
from emitter.schema_registry import BlockingSchemaRegistry, RegistryConfig, SchemaRegistry, register_value_schema
from emitter.settings import Settings, load_settings
from tests.integration.avro_java import java_decode
from tests.integration.conftest import emitter_cmd
from tests.integration.kafka_read import read_committed
from tests.integration.registry_proxy import (
    RegistryProxy,
    dev_registry,
    free_port,
    make_server_certificate,
    running,
)
from tests.integration.test_avro_interop import as_java_json

LIMIT = 4  # per demo group; two groups
CREDENTIALS = {"right": "right-password", "wrong": "wrong-password-value"}


def run_demo(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`emitter run` on the demo source, LIMIT messages per group."""
    argv = emitter_cmd("run", "--demo-limit", str(LIMIT), "--demo-history", str(LIMIT), *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def values(kafka: str, topic: str) -> list[bytes]:
    """The committed values of `topic`."""
    return [v for _k, v in asyncio.run(read_committed(kafka, topic, raw=True))]


def with_registry(settings: Settings, **kafka: Any) -> Settings:
    """`settings` with registry keys added to [kafka]."""
    return load_settings(None, {"kafka": {**settings.kafka.model_dump(), **kafka}, "emitter": {}})


def test_records_read_by_confluent_deserializer_and_java(
    registry: str, kafka: str, cli_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    """A record written with the registry reads the same through confluent-kafka's AvroDeserializer, Java's
    Avro library given the registry's schema, and our decode."""
    done = run_demo({**cli_env, "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": registry})
    assert done.returncode == 0, done.stderr
    written = values(kafka, names["topic"])
    assert len(written) == 2 * LIMIT
    ids = {confluent_schema_id(v) for v in written}
    assert len(ids) == 1 and None not in ids
    (schema_id,) = ids
    assert schema_id is not None

    ours = [decode(v, registry=registry) for v in written]
    with SchemaRegistryClient({"url": registry}) as client:
        deserializer = AvroDeserializer(client)
        context = SerializationContext(names["topic"], MessageField.VALUE)
        assert [deserializer(v, context) for v in written] == ours
        registered = client.get_schema(schema_id)
        assert client.get_latest_version(f"{names['topic']}-value").schema_id == schema_id
    assert json.loads(registered.schema_str or "") == message_schema().raw
    writer = tmp_path / "from-registry.avsc"
    writer.write_text(registered.schema_str or "")
    assert java_decode(written, writer) == [as_java_json(r) for r in ours]
    assert {r["message_id"] for r in ours} == set(range(1, LIMIT + 1))


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        ("record", "io.telegram_emitter.v1.MessageEvent"),
        ("topic-record", "{topic}-io.telegram_emitter.v1.MessageEvent"),
    ],
)
async def test_subject_name_strategy_names_the_subject(
    registry: str, settings: Settings, names: dict[str, str], strategy: str, subject: str
) -> None:
    """The schema is registered under the subject the configured strategy names."""
    s = with_registry(settings, schema_registry_url=registry, subject_name_strategy=strategy)
    schema_id = await register_value_schema(s.kafka, message_schema())
    with SchemaRegistryClient({"url": registry}) as client:
        latest = client.get_latest_version(subject.format(topic=names["topic"]))
    assert latest.schema_id == schema_id


def test_incompatible_schema_is_refused_with_one_line(
    registry: str, cli_env: dict[str, str], names: dict[str, str]
) -> None:
    """With BACKWARD compatibility and an earlier version ours cannot read, the emitter stops with one
    line naming the subject and the registry's reason, exit 1."""
    subject = f"{names['topic']}-value"
    earlier = {
        "type": "record",
        "name": "MessageEvent",
        "namespace": "io.telegram_emitter.v1",
        "fields": [{"name": "only", "type": "string"}],
    }
    with SchemaRegistryClient({"url": registry}) as client:
        client.register_schema(subject, RegistrySchema(json.dumps(earlier), "AVRO"))
        client.set_compatibility(subject, "BACKWARD")
    done = run_demo({**cli_env, "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": registry}, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"emitter: fatal: schema registry at {registry} refused the schema for subject ")
    assert f"{subject!r} as incompatible: " in last
    assert "Incompatible" in last  # the registry's own reason follows
    with SchemaRegistryClient({"url": registry}) as client:
        assert client.get_latest_version(subject).version == 1  # nothing was registered


def test_tail_and_decode_with_a_registry(
    registry: str, kafka: str, cli_env: dict[str, str], names: dict[str, str]
) -> None:
    """`emitter tail` prints Confluent-framed records; decode(registry=URL) asks once per schema id."""
    env = {**cli_env, "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": registry}
    assert run_demo(env).returncode == 0
    tail = subprocess.run(
        emitter_cmd("tail", "--from-beginning", "--max", str(2 * LIMIT), "--idle-timeout", "20"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(lines) == 2 * LIMIT
    assert {line["event_type"] for line in lines} == {"NEW"}
    assert sorted({line["message_id"] for line in lines}) == list(range(1, LIMIT + 1))

    written = values(kafka, names["topic"])
    with running(RegistryProxy(registry)) as proxy:
        records = [decode(v, registry=proxy.url) for v in written * 5]
        assert len(records) == 10 * LIMIT
        assert len(proxy.schema_requests()) == 1, proxy.requests

    gone = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    tail = subprocess.run(
        emitter_cmd("tail", "--from-beginning", "--max", "1", "--idle-timeout", "20"),
        env={**env, "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": gone},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tail.returncode == 1
    assert tail.stdout == ""
    assert tail.stderr.strip().splitlines()[-1].startswith(f"emitter: failed: schema registry at {gone} unreachable: ")
    assert "Traceback" not in tail.stderr


def test_tail_without_a_registry_reads_single_object_records(kafka: str, cli_env: dict[str, str]) -> None:
    """Without a registry configured `emitter tail` reads single-object values as before."""
    assert run_demo(cli_env).returncode == 0
    tail = subprocess.run(
        emitter_cmd("tail", "--from-beginning", "--max", str(2 * LIMIT), "--idle-timeout", "20"),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tail.returncode == 0, tail.stderr
    assert sorted({json.loads(line)["message_id"] for line in tail.stdout.splitlines()}) == list(range(1, LIMIT + 1))


async def test_basic_auth_is_sent_and_a_wrong_password_is_one_line(registry: str, settings: Settings) -> None:
    """The registry's basic-auth credentials are sent; refused ones give one fatal line without the password."""
    with running(RegistryProxy(registry, username="svc", password=CREDENTIALS["right"])) as proxy:
        good = with_registry(
            settings,
            schema_registry_url=proxy.url,
            schema_registry_username="svc",
            schema_registry_password=CREDENTIALS["right"],
        )
        assert await register_value_schema(good.kafka, message_schema()) > 0
        bad = with_registry(
            settings,
            schema_registry_url=proxy.url,
            schema_registry_username="svc",
            schema_registry_password=CREDENTIALS["wrong"],
        )
        with pytest.raises(FatalError) as refused:
            await register_value_schema(bad.kafka, message_schema())
        assert str(refused.value) == (
            f"schema registry at {proxy.url} refused access for user 'svc' (HTTP 401): "
            "check kafka.schema_registry_username and kafka.schema_registry_password"
        )
        assert CREDENTIALS["wrong"] not in str(refused.value) + repr(bad)


async def test_tls_registry_with_its_ca_and_without(registry: str, settings: Settings, tmp_path: Path) -> None:
    """An https registry works with kafka.schema_registry_ssl_cafile; without it the certificate is refused in
    one line naming that setting."""
    ca, cert, key = make_server_certificate(tmp_path / "tls")
    proxy = RegistryProxy(registry)
    proxy.use_tls(cert, key)
    with running(proxy):
        trusted = with_registry(settings, schema_registry_url=proxy.url, schema_registry_ssl_cafile=str(ca))
        schema_id = await register_value_schema(trusted.kafka, message_schema())
        async with SchemaRegistry(RegistryConfig.from_settings(trusted.kafka)) as client:
            assert (await client.fetch(schema_id)).fingerprint == message_schema().fingerprint
        untrusted = with_registry(settings, schema_registry_url=proxy.url)
        with pytest.raises(FatalError, match=r"presented a TLS certificate that failed verification") as refused:
            await register_value_schema(untrusted.kafka, message_schema())
        assert "kafka.schema_registry_ssl_cafile" in str(refused.value)


def test_registry_down_at_start_retries_then_works(
    kafka: str, cli_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    """With the registry down the emitter logs a clear retry line (no traceback), and once a registry comes
    up it registers and writes Confluent-framed records."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    log = tmp_path / "emitter.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            emitter_cmd("run", "--demo-limit", str(LIMIT), "--demo-history", str(LIMIT)),
            env={**cli_env, "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": url},
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    state = tmp_path / "registry"
    try:
        needle = f"schema registry at {url} unreachable: "
        deadline = time.monotonic() + 60
        while needle not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no retry line within 60 s: {log.read_text()}"
            time.sleep(0.1)
        dev_registry("start", port, state)
        assert proc.wait(timeout=240) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        dev_registry("stop", port, state)
    text = log.read_text()
    assert "Traceback" not in text
    retry = next(json.loads(line) for line in text.splitlines() if needle in line)
    assert retry["level"] in {"WARNING", "warning"}
    assert re.fullmatch(rf"start sink failed: {re.escape(needle)}.+; retrying in \d+\.\d s", retry["message"])
    written = values(kafka, names["topic"])
    assert len(written) == 2 * LIMIT
    assert {confluent_schema_id(v) for v in written} == {1}  # the fresh registry's first id


def test_blocking_client_for_a_missing_id_is_a_value_error(registry: str) -> None:
    """decode() of a Confluent-framed value whose id the registry lacks raises ValueError naming the id."""
    value = b"\x00" + (987654).to_bytes(4, "big") + b"\x00"
    with (
        BlockingSchemaRegistry(registry) as client,
        pytest.raises(ValueError, match=r"schema id 987654 is not in the schema registry at"),
    ):
        decode(value, registry=client)
