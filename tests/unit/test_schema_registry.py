"""The registry client's pure parts: subjects, configuration, and how failures read."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx2
import pytest
from confluent_kafka.schema_registry import SchemaRegistryError
from pydantic import SecretStr

from emitter.cli import main
from emitter.errors import FatalError, RetriableError
from emitter.schema_registry import RegistryConfig, describe, subject_name
from emitter.settings import load_settings

URL = "https://registry.example:8081"
CONFIG = RegistryConfig(URL, "svc", SecretStr("registry-secret-value"), "/etc/ca.pem")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        ("topic", "telegram-messages-value"),
        ("record", "io.telegram_emitter.v1.MessageEvent"),
        ("topic-record", "telegram-messages-io.telegram_emitter.v1.MessageEvent"),
    ],
)
def test_subject_follows_the_naming_strategy(strategy: str, subject: str) -> None:
    """Each strategy names the subject as Confluent's TopicName/RecordName/TopicRecordName strategies do."""
    assert subject_name(strategy, "telegram-messages", "io.telegram_emitter.v1.MessageEvent") == subject  # type: ignore[arg-type]


def test_settings_carry_strategy_credentials_and_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry settings load from the environment into the client's configuration."""
    env = {
        "EMITTER_KAFKA__SCHEMA_REGISTRY_URL": URL,
        "EMITTER_KAFKA__SUBJECT_NAME_STRATEGY": "topic-record",
        "EMITTER_KAFKA__SCHEMA_REGISTRY_USERNAME": "svc",
        "EMITTER_KAFKA__SCHEMA_REGISTRY_PASSWORD": "registry-secret-value",
        "EMITTER_KAFKA__SCHEMA_REGISTRY_SSL_CAFILE": "/etc/ca.pem",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    settings = load_settings().kafka
    assert settings.subject_name_strategy == "topic-record"
    conf = RegistryConfig.from_settings(settings).client_conf(retries=0)
    assert conf == {
        "url": URL,
        "timeout": 10.0,
        "max.retries": 0,
        "basic.auth.user.info": "svc:registry-secret-value",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert "registry-secret-value" not in repr(settings) + str(settings)


def test_the_password_never_shows_in_repr() -> None:
    """repr() of the registry configuration hides the password."""
    assert "registry-secret-value" not in repr(CONFIG)
    assert "svc" in repr(CONFIG)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EMITTER_KAFKA__SUBJECT_NAME_STRATEGY": "by-topic"}, "kafka.subject_name_strategy = 'by-topic'"),
        ({"EMITTER_KAFKA__SCHEMA_REGISTRY_PASSWORD": "registry-secret-value"}, "set both or neither"),
        ({"EMITTER_KAFKA__SCHEMA_REGISTRY_USERNAME": "svc"}, "set both or neither"),
        (
            {"EMITTER_KAFKA__SCHEMA_REGISTRY_URL": "https://svc:registry-secret-value@registry:8081"},
            "schema_registry_url carries credentials",
        ),
    ],
    ids=["unknown strategy", "password without user", "user without password", "credentials in the URL"],
)
def test_bad_registry_settings_are_one_line_and_exit_2(
    env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad registry setting exits 2 with one line naming it, and never prints the password."""
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert expected in err
    assert "registry-secret-value" not in err


def test_incompatible_schema_is_one_fatal_line_with_subject_and_reason() -> None:
    """A 409 names the subject and the registry's reason, without the Java exception class."""
    error = SchemaRegistryError(
        409,
        409,
        "io.apicurio.registry.rules.RuleViolationException: Incompatible artifact: s-value [AVRO], "
        "num of incompatible diffs: {1}",
    )
    described = describe(CONFIG, error, subject="s-value")
    assert isinstance(described, FatalError)
    assert str(described) == (
        f"schema registry at {URL} refused the schema for subject 's-value' as incompatible: "
        "Incompatible artifact: s-value [AVRO], num of incompatible diffs: {1}"
    )


def test_refused_credentials_name_the_user_not_the_password() -> None:
    """A 401 is fatal and names the user and the settings to check, never the password."""
    described = describe(CONFIG, SchemaRegistryError(401, 401, "Unauthorized"))
    assert isinstance(described, FatalError)
    assert "user 'svc'" in str(described)
    assert "kafka.schema_registry_password" in str(described)
    assert "registry-secret-value" not in str(described)


def test_unreachable_and_server_errors_are_retriable() -> None:
    """No answer, or a 5xx, is retriable: the emitter backs off and asks again."""
    refused = httpx2.ConnectError("All connection attempts failed")
    assert isinstance(describe(CONFIG, refused), RetriableError)
    assert str(describe(CONFIG, refused)) == f"schema registry at {URL} unreachable: All connection attempts failed"
    assert isinstance(describe(CONFIG, SchemaRegistryError(503, 50003, "storage down")), RetriableError)


def test_untrusted_certificate_is_fatal_and_names_the_ca_setting() -> None:
    """A certificate that fails verification is fatal and points at kafka.schema_registry_ssl_cafile."""
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    error = httpx2.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    error.__cause__ = cause
    described = describe(CONFIG, error)
    assert isinstance(described, FatalError)
    assert "self-signed certificate" in str(described)
    assert "kafka.schema_registry_ssl_cafile '/etc/ca.pem'" in str(described)
