"""The Dockerfile and docker-compose.yml, read as text: their settings are ones the emitter accepts."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from emitter.errors import ConfigError
from emitter.settings import load_settings
from tests.deploy.chart import CONTAINER_TMP, ROOT


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (keyword, arguments) per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), arguments.strip()))
    return stages


def final_stage(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction of the image's final stage."""
    return [arguments for word, arguments in dockerfile_stages()[-1] if word == keyword]


def image_env() -> dict[str, str]:
    """The environment the image sets."""
    env: dict[str, str] = {}
    for arguments in final_stage("ENV"):
        for token in shlex.split(arguments):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def env_file(path: Path) -> dict[str, str]:
    """A compose env file's KEY=value lines (comments and blank lines skipped)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def compose() -> dict[str, Any]:
    """docker-compose.yml as a dict."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_image_defaults_are_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    """The image's EMITTER_* variables load as settings: JSON logs, /data, the HTTP server on 9464."""
    monkeypatch.chdir(tmp_path)
    for key, value in image_env().items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.telemetry.http_port == 9464
    assert settings.telemetry.http_host == "0.0.0.0"  # noqa: S104 - the pod address; the default is loopback
    assert settings.emitter.log_format == "json"
    assert str(settings.emitter.data_dir) == "/data"
    assert image_env()["PYTHONDONTWRITEBYTECODE"] == "1"
    assert image_env()["HOME"] == CONTAINER_TMP


def test_image_runs_the_emitter_unprivileged() -> None:
    """UID 10001, `emitter run` by default, port 9464 exposed and checked on /healthz."""
    assert final_stage("USER") == ["10001:10001"]
    assert [json.loads(a) for a in final_stage("ENTRYPOINT")] == [["emitter"]]
    assert [json.loads(a) for a in final_stage("CMD")] == [["run"]]
    assert final_stage("EXPOSE") == ["9464"]
    (healthcheck,) = final_stage("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "EMITTER_TELEMETRY__HTTP_PORT" in healthcheck


def test_both_stages_use_one_pinned_slim_python() -> None:
    """The build and final stages share a base image pinned to a Python 3.11 patch release."""
    bases = [stage[0][1].split()[0] for stage in dockerfile_stages()]
    assert len(bases) == 2
    assert len(set(bases)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0])


def test_build_context_holds_the_schema() -> None:
    """.dockerignore lets in schemas/, which emitter/schemas links to, and keeps secrets out."""
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert lines[lines.index("*") :].count("!schemas/") == 1
    assert "!emitter/" in lines
    assert not [line for line in lines if "session" in line or "config.ini" in line]


def test_compose_emitter_runs_the_demo_into_kafka_and_jaeger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    """Without telegram.env the emitter runs the demo source into the compose Kafka, traces to Jaeger."""
    services = compose()["services"]
    emitter = services["emitter"]
    monkeypatch.chdir(tmp_path)
    assert emitter["env_file"] == [
        {"path": "docker-compose.demo.env", "required": True},
        {"path": "telegram.env", "required": False},
    ]
    for key, value in {**image_env(), **env_file(ROOT / "docker-compose.demo.env"), **emitter["environment"]}.items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings()
    assert settings.source_kind == "demo"
    assert settings.sink_kind == "kafka"
    (bootstrap,) = settings.kafka.bootstrap_servers or []
    assert f"://{bootstrap}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert (settings.telemetry.otlp_endpoint or "").startswith("http://jaeger:4318")
    # Without the demo file, auto must refuse to publish demo data into the compose Kafka.
    monkeypatch.delenv("EMITTER_EMITTER__SOURCE")
    with pytest.raises(ConfigError, match="never demo data"):
        _ = load_settings().source_kind
    assert emitter["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_emitter_is_as_restricted_as_in_kubernetes() -> None:
    """Read-only root, /tmp and /data the only writable paths, no capabilities, a stop that covers the drain."""
    emitter = compose()["services"]["emitter"]
    assert emitter["read_only"] is True
    assert emitter["tmpfs"] == [CONTAINER_TMP]
    assert [v.split(":")[1] for v in emitter["volumes"]] == ["/data"]
    assert emitter["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in emitter["security_opt"]
    assert int(emitter["stop_grace_period"].removesuffix("s")) > 20


def test_compose_kafka_is_a_single_node_that_supports_transactions() -> None:
    """The KRaft broker's internal topics ask for one replica, or transactions never work on one broker."""
    env = compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == 1, key


def test_compose_images_are_pinned() -> None:
    """Every image names a version: apache/kafka and a Jaeger v2 release."""
    images = {name: s["image"] for name, s in compose()["services"].items()}
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", images["kafka"])
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", images["jaeger"])
    assert images["emitter"] == "telegram-emitter:0.1.0"
