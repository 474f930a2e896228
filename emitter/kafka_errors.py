"""What a Kafka error means for the emitter: one pure classification, so every caller reacts the same way.

aiokafka 0.14 reports the same broker answer under different names depending on where it came back
(produce, AddPartitionsToTxn, EndTxn), and it cannot tell an expired transaction from a fence: both arrive as
`ProducerFenced` (the broker's INVALID_PRODUCER_EPOCH). Kafka 4.x may even answer an EndTxn racing its own
expiry with UNKNOWN_SERVER_ERROR, which aiokafka wraps in a bare `KafkaError("Unexpected error during batch
delivery")`. What tells them apart is the transaction's age: only a transaction open longer than
`transaction_timeout_ms` can have been expired by the broker.

aiokafka 0.14 also has no class for INVALID_RECORD (87): it becomes an UnknownError without its code, which
cannot be told from any other UNKNOWN_SERVER_ERROR, so it is retried like an outage. Records the broker
refuses for their size (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE) or content (CORRUPT_MESSAGE) are told.
"""

from __future__ import annotations

import enum

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    GroupAuthorizationFailedError,
    InvalidConfigurationError,
    InvalidPartitionsError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidReplicationFactorError,
    InvalidTxnState,
    MessageSizeTooLargeError,
    PolicyViolationError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownError,
    UnknownProducerId,
)

__all__ = ["Kind", "classify", "denial"]


class Kind(enum.Enum):
    """How to react to a failed Kafka operation."""

    FENCED = "fenced"
    """Another producer took our transactional id: stop, or we would write twice."""
    EXPIRED = "expired"
    """The broker dropped our transaction (timed out, producer id forgotten): new producer, same batch."""
    DENIED = "denied"
    """An ACL is missing: no retry can help, one line naming it."""
    CONFIG = "config"
    """The broker refuses a setting of ours (replication factor, topic config): the user's to fix."""
    REFUSED_RECORD = "refused-record"
    """The broker refuses a record as sent (too large, invalid): the oversize policy applies."""
    RETRIABLE = "retriable"
    """An outage or a transient broker state: abort, back off, retry the batch."""


_EPOCH = (ProducerFenced, InvalidProducerEpoch)
_FORGOTTEN = (InvalidTxnState, InvalidProducerIdMapping, UnknownProducerId)
_DENIED = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    GroupAuthorizationFailedError,
)
_CONFIG = (InvalidConfigurationError, InvalidReplicationFactorError, InvalidPartitionsError, PolicyViolationError)
_RECORD = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, CorruptRecordException)


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps (aiokafka re-raises a sender's failure as a bare KafkaError)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(  # noqa: PLR0911 - one return per kind reads as the table it is
    error: BaseException, *, transaction_age: float | None = None, transaction_timeout: float
) -> Kind:
    """The kind of `error`; `transaction_age` is how long the failed transaction had been open (seconds).

    Args:
        error: what aiokafka raised.
        transaction_age: seconds since `begin_transaction`, or None outside a transaction.
        transaction_timeout: `kafka.transaction_timeout_ms` in seconds.
    """
    chain = _causes(error)
    outlived = transaction_age is not None and transaction_age >= transaction_timeout
    if any(isinstance(e, _DENIED) for e in chain):
        return Kind.DENIED
    if any(isinstance(e, _EPOCH) for e in chain):
        return Kind.EXPIRED if outlived else Kind.FENCED
    if any(isinstance(e, _FORGOTTEN) for e in chain):
        return Kind.EXPIRED
    if any(isinstance(e, _RECORD) for e in chain):
        return Kind.REFUSED_RECORD
    if any(isinstance(e, _CONFIG) for e in chain):
        return Kind.CONFIG
    if outlived and any(isinstance(e, UnknownError) for e in chain):
        return Kind.EXPIRED
    return Kind.RETRIABLE


def denial(error: BaseException, *, principal: str, topics: str, transactional_id: str) -> str:
    """One line naming the ACL the broker wants, for a `Kind.DENIED` error.

    Args:
        principal: who we are to the broker (the SASL user, or "the client" without SASL).
        topics: the topics the operation touched, for a topic denial that names none.
        transactional_id: ours, for a transactional-id denial.
    """
    chain = _causes(error)
    if any(isinstance(e, TransactionalIdAuthorizationFailed) for e in chain):
        return (
            f"Kafka denied {principal} WRITE on transactional id {transactional_id!r}: "
            "grant WRITE and DESCRIBE on it (ACL on TransactionalId)"
        )
    if any(isinstance(e, ClusterAuthorizationFailedError) for e in chain):
        return f"Kafka denied {principal} a cluster operation: grant IDEMPOTENT_WRITE (or CREATE) on the cluster"
    if any(isinstance(e, GroupAuthorizationFailedError) for e in chain):
        return f"Kafka denied {principal} access to a consumer group: grant READ on it"
    named = next((e for e in chain if isinstance(e, TopicAuthorizationFailedError)), error)
    detail = _topics_in(named) or topics
    return f"Kafka denied {principal} WRITE on topic {detail}: grant WRITE and DESCRIBE on it (ACL on Topic)"


def _topics_in(error: BaseException) -> str:
    """The topic names aiokafka put in a TopicAuthorizationFailedError, if any."""
    names: list[str] = []
    for arg in error.args:
        if isinstance(arg, str) and arg and " " not in arg:
            names.append(arg)
        elif isinstance(arg, set | list | tuple):
            names += sorted(str(a) for a in arg)
    return ", ".join(repr(n) for n in names)
