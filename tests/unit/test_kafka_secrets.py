"""The SASL password stays a SecretStr in the emitter's own objects until aiokafka is handed it."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from emitter.kafka_sink import KafkaSink, connection_options
from emitter.settings import load_settings

PASSWORD = "plain-sasl-password-to-hunt-for"  # noqa: S105 - a made-up secret the test looks for


def plain_strings(value: Any, depth: int = 0) -> list[str]:
    """Every str reachable from `value` through containers and instance attributes (SecretStr stays shut)."""
    if depth > 6 or isinstance(value, SecretStr):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in plain_strings(k, depth + 1) + plain_strings(v, depth + 1)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in plain_strings(v, depth + 1)]
    attributes = getattr(value, "__dict__", None)
    return plain_strings(dict(attributes), depth + 1) if attributes is not None else []


def test_a_kafka_sink_keeps_no_plain_sasl_password() -> None:
    """A SASL sink's attributes hold the password only as a SecretStr; the options for aiokafka carry it."""
    settings = load_settings(
        None,
        {
            "kafka": {
                "bootstrap_servers": "127.0.0.1:1",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "emitter",
                "sasl_password": PASSWORD,
            }
        },
    )
    sink = KafkaSink(settings.kafka, "secrets")
    assert PASSWORD not in plain_strings(sink)
    assert PASSWORD not in repr(sink)
    assert connection_options(sink.settings)["sasl_plain_password"] == PASSWORD
