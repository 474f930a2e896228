"""Classifying what aiokafka raises: fence, expiry, denial, refused record, outage."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpoch,
    InvalidReplicationFactorError,
    InvalidTxnState,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    ProducerFenced,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownError,
    for_code,
)

from emitter.kafka_errors import Kind, classify, denial

TIMEOUT = 10.0


def _wrapped(cause: BaseException) -> KafkaError:
    """What aiokafka's producer raises when its sender routine died of `cause`."""
    error = KafkaError("Unexpected error during batch delivery")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "age", "kind"),
    [
        (ProducerFenced(), 1.0, Kind.FENCED),
        (ProducerFenced(), None, Kind.FENCED),
        (ProducerFenced(), 12.0, Kind.EXPIRED),
        (InvalidProducerEpoch(), 3.0, Kind.FENCED),
        (InvalidProducerEpoch(), 10.0, Kind.EXPIRED),
        (InvalidTxnState(), 1.0, Kind.EXPIRED),
        (_wrapped(UnknownError()), 15.0, Kind.EXPIRED),
        (_wrapped(UnknownError()), 2.0, Kind.RETRIABLE),
        (_wrapped(ProducerFenced()), 2.0, Kind.FENCED),
        (TopicAuthorizationFailedError("t"), 1.0, Kind.DENIED),
        (TransactionalIdAuthorizationFailed("te-x"), 20.0, Kind.DENIED),
        (ClusterAuthorizationFailedError(), None, Kind.DENIED),
        (MessageSizeTooLargeError(), 1.0, Kind.REFUSED_RECORD),
        (RecordTooLargeError(), 1.0, Kind.REFUSED_RECORD),
        (InvalidReplicationFactorError(), None, Kind.CONFIG),
        (KafkaConnectionError(), 1.0, Kind.RETRIABLE),
        (KafkaTimeoutError(), 30.0, Kind.RETRIABLE),
        (NotLeaderForPartitionError(), 1.0, Kind.RETRIABLE),
    ],
)
def test_classify(error: KafkaError, age: float | None, kind: Kind) -> None:
    """Each error maps to the reaction its kind calls for; a fence is an expiry only past the timeout."""
    assert classify(error, transaction_age=age, transaction_timeout=TIMEOUT) is kind


def test_invalid_record_is_indistinguishable_in_aiokafka() -> None:
    """aiokafka 0.14 has no class for INVALID_RECORD (87) and drops the code: it stays an outage (retried)."""
    error = for_code(87)()
    assert type(error) is UnknownError
    assert classify(error, transaction_age=1.0, transaction_timeout=TIMEOUT) is Kind.RETRIABLE


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (TopicAuthorizationFailedError({"telegram-messages"}), "WRITE on topic 'telegram-messages'"),
        (TopicAuthorizationFailedError(), "WRITE on topic 'a', 'b'"),
        (TransactionalIdAuthorizationFailed("te-x"), "WRITE on transactional id 'te-x'"),
        (ClusterAuthorizationFailedError(), "IDEMPOTENT_WRITE"),
    ],
)
def test_denial_names_the_acl(error: KafkaError, needle: str) -> None:
    """A denial becomes one line naming the principal and the ACL to grant."""
    line = denial(error, principal="user 'emitter'", topics="'a', 'b'", transactional_id="te-x")
    assert needle in line
    assert line.startswith("Kafka denied user 'emitter'")
    assert "\n" not in line
