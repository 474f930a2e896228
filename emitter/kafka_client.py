"""Connecting to Kafka: the options every client shares, telling a refusal from an outage, assigning topics.

Shared by the transactional writer (`kafka_sink`), the cursor reader, topic provisioning and `tail`.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from emitter.errors import FatalError
from emitter.settings import KafkaSettings

__all__ = ["assign_all", "connection_options", "refusal"]


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka options for bootstrap, TLS and SASL, shared by producer, consumers and admin."""
    opts: dict[str, Any] = {
        "bootstrap_servers": ",".join(settings.bootstrap_servers or ()),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
    if settings.security_protocol.startswith("SASL_"):
        opts["sasl_mechanism"] = settings.sasl_mechanism
        opts["sasl_plain_username"] = settings.sasl_username
        opts["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return opts


async def refusal(settings: KafkaSettings, error: BaseException) -> FatalError | None:
    """The fatal error to raise when `error` means the brokers refused us (SASL credentials, an untrusted TLS
    certificate), which no retry can fix; None for anything else (an outage: retry).

    At bootstrap aiokafka only logs why a broker refused the connection and raises a bare
    KafkaConnectionError; one direct connection to each bootstrap server tells a refusal from an outage.
    """
    if isinstance(error, SaslAuthenticationFailed | UnsupportedSaslMechanismError):
        return _refusal_error(settings, ",".join(settings.bootstrap_servers or ()), error)
    if not isinstance(error, KafkaConnectionError):
        return None
    options = {k: v for k, v in connection_options(settings).items() if k != "bootstrap_servers"}
    for host, port, _family in collect_hosts(list(settings.bootstrap_servers or ()), randomize=False):
        try:
            conn = await create_conn(host, port, request_timeout_ms=10000, **options)
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, ssl.SSLCertVerificationError) as e:
            return _refusal_error(settings, f"{host}:{port}", e)
        except (OSError, KafkaError, TimeoutError):
            continue
        conn.close()
    return None


def _refusal_error(settings: KafkaSettings, where: str, error: BaseException) -> FatalError:
    """One line naming the broker, the user or CA file, and what to fix; never the password."""
    s = settings
    if isinstance(error, ssl.SSLCertVerificationError):
        trust = f"kafka.ssl_cafile {str(s.ssl_cafile)!r}" if s.ssl_cafile else "the system's CA certificates"
        return FatalError(
            f"Kafka at {where} presented a TLS certificate that failed verification against {trust} "
            f"({error.verify_message}): kafka.ssl_cafile must be the CA that signed the brokers' certificates"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return FatalError(f"Kafka at {where} does not offer SASL mechanism {s.sasl_mechanism}: {error}")
    return FatalError(
        f"Kafka at {where} refused the SASL credentials of user {s.sasl_username!r} ({s.sasl_mechanism}): "
        "check kafka.sasl_username and kafka.sasl_password"
    )


async def assign_all(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of `topic` to a started consumer (no consumer group: we track positions)."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if tps:
        consumer.assign(tps)
    return tps
