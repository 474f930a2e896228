"""The Kafka sink: records and cursors committed in one transaction.

One transactional producer per emitter identity (``<prefix>-<instance>``). Starting it fences any older
producer of the same identity (and aborts that one's open transaction), so cursors are restored only after
the producer has started: what we read then is exactly what was committed (see `emitter.cursor_reader`).

Every transaction ends explicitly: committed, or aborted before the batch is retried. A producer whose
transaction cannot be aborted (fenced, failed, cancelled mid-commit) is discarded, never used again half-way;
the next one's init aborts whatever it left open. Topics are provisioned by `emitter.kafka_topics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.client import ConnectionGroup, CoordinationType
from aiokafka.errors import IllegalOperation, KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.transaction import EndTxnRequest
from opentelemetry.trace import Link, SpanKind, StatusCode, Tracer

from emitter.codec import Encoder, message_schema
from emitter.cursor import GroupCursor
from emitter.cursor_reader import cursor_key, read_cursors
from emitter.errors import ConfigError, EmitterError, FatalError, FencedError, RetriableError
from emitter.kafka_client import assign_all, connection_options, refusal
from emitter.kafka_errors import Kind, classify, denial
from emitter.kafka_topics import ensure_topics
from emitter.lifecycle import Service
from emitter.oversize import fit
from emitter.protocols import Batch
from emitter.records import MessageEvent
from emitter.schema_registry import register_value_schema
from emitter.settings import KafkaSettings
from emitter.tracing import inject_headers
from emitter.tracing import tracer as default_tracer

__all__ = ["KafkaSink", "assign_all", "connection_options", "cursor_key", "refusal"]

log = logging.getLogger("emitter.kafka")

_CURSOR_CONTENT_TYPE = b"application/json"
_ABORT_WITHIN = 5.0
"""Seconds an explicit abort may take before the sink falls back to an unacknowledged one: aiokafka flushes
the transaction's sends before it aborts, and against a hung broker that never ends."""
_STOP_WITHIN = 5.0
"""Seconds a producer may take to stop; a hung broker would otherwise hold the process past its drain bound."""
_HURRIED = 1.0
"""Seconds for an abort or a stop once the broker is known to be unresponsive."""
_MIN_RECORD_BYTES = 10_000
"""The smallest record limit a refusal may shrink the sink to (the setting's own minimum)."""

_ENDABLE = {"IN_TRANSACTION", "ABORTABLE_ERROR"}
_ENDING = {"COMMITTING_TRANSACTION", "ABORTING_TRANSACTION"}


def _txn_state(producer: AIOKafkaProducer) -> str:
    """The producer's transaction state. aiokafka keeps it private, and calling abort in the wrong state trips
    an assertion instead of raising, so the sink looks before it leaps."""
    return str(producer._txn_manager.state.name)


class KafkaSink(Service):
    """Commits batches to `telegram-messages` and the cursor topic in one Kafka transaction."""

    def __init__(
        self, settings: KafkaSettings, instance: str, *, encoder: Encoder | None = None, tracer: Tracer | None = None
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.transactional_id = f"{settings.transactional_id_prefix}-{instance}"
        self._encoder = encoder
        self._producer: AIOKafkaProducer | None = None
        self._abandoned: list[AIOKafkaProducer] = []
        """Producers left mid-transaction by a cancelled commit: aborted and closed by `stop`."""
        self._open_since: float | None = None
        """Monotonic time the current producer began the transaction still open, if any."""
        self._committed: dict[int, GroupCursor] = {}
        """The cursors this sink restored or committed last, to notice another writer after a renewal."""
        self._renewed = False
        self._record_limit = settings.max_record_bytes
        self._tracer = tracer or default_tracer()

    def __repr__(self) -> str:
        return f"KafkaSink(topic={self.settings.topic!r}, transactional_id={self.transactional_id!r})"

    # The connection options are built where a client is made and not kept: they hold the SASL password in
    # plain text, which stays a SecretStr in the settings until aiokafka needs it.
    @property
    def _bootstrap(self) -> str:
        return ",".join(self.settings.bootstrap_servers or ())

    @property
    def encoder(self) -> Encoder:
        """The record encoder (Confluent framing once a registry id is known)."""
        if self._encoder is None:
            self._encoder = Encoder()
        return self._encoder

    async def start(self) -> None:
        """Ensure the topics, register the schema if a registry is configured, start the producer."""
        if self._producer is not None:
            return
        try:
            await ensure_topics(self.settings)
            if self.settings.schema_registry_url and self._encoder is None:
                schema_id = await register_value_schema(self.settings, message_schema())
                self._encoder = Encoder(confluent_schema_id=schema_id)
            self._producer = await self._new_producer()
        except KafkaError as e:
            raise await self._outside_transaction(e, retriable=True) from e

    async def verify(self) -> dict[int, GroupCursor]:
        """Check topics and read this instance's cursors without starting a producer (which would fence
        a running emitter of the same identity)."""
        try:
            await ensure_topics(self.settings)
        except KafkaError as e:
            raise await self._outside_transaction(e, retriable=False) from e
        return await read_cursors(self.settings, self.instance)

    async def stop(self) -> None:
        """Abort an open transaction (explicitly: an abandoned one would hold back every read_committed
        consumer of its partitions until the broker times it out), then stop the producer."""
        producer, self._producer = self._producer, None
        abandoned, self._abandoned = self._abandoned, []
        for old in abandoned:
            # Cancelled mid-commit, most likely by the drain's bound: the broker is slow or hung, and the
            # process is on its way out, so it gets a second at most before the abort goes unacknowledged.
            await self._close(old, open_transaction=True, within=_HURRIED)
        if producer is not None:
            await self._close(producer, open_transaction=self._open_since is not None)
        self._open_since = None

    async def load_cursors(self) -> dict[int, GroupCursor]:
        """This instance's committed cursors (see `emitter.cursor_reader`)."""
        cursors = await read_cursors(self.settings, self.instance)
        self._committed = dict(cursors)
        return cursors

    async def commit(self, batch: Batch) -> None:
        """Send the batch's records and cursors in one transaction, traced as one PRODUCER span."""
        producer = await self._ready_producer()
        topic = self.settings.topic
        with self._tracer.start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            links=[Link(ctx) for ctx in batch.links],
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.batch.message_count": len(batch.events),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                partitions = await self._send_transaction(producer, batch)
            except EmitterError as e:
                span.set_attribute("error.type", type(e.__cause__ or e).__name__)
                span.set_status(StatusCode.ERROR, str(e))
                raise
            if len(partitions) == 1:
                span.set_attribute("messaging.destination.partition.id", str(next(iter(partitions))))

    # --- producers ---------------------------------------------------------------------------------------

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **connection_options(self.settings),
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
            enable_idempotence=True,
            acks="all",
            compression_type=None if self.settings.compression == "none" else self.settings.compression,
            max_batch_size=256 * 1024,
            # Room for the largest record plus its headers, so aiokafka never refuses one client-side.
            max_request_size=self.settings.max_record_bytes + 64 * 1024,
            linger_ms=5,
        )
        try:
            await producer.start()
        except AssertionError as e:
            await producer.stop()
            # aiokafka asserts instead of raising when the metadata it bootstrapped from names no broker, as a
            # KRaft broker's does for a moment after its controller fenced it (a paused or overloaded node):
            # an outage to retry, not a crash.
            raise KafkaConnectionError(f"the cluster's metadata named no broker ({e})") from e
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _ready_producer(self) -> AIOKafkaProducer:
        """The producer to commit with: a new one after a failure, checked after an expired transaction."""
        if self._producer is None:
            try:
                self._producer = await self._new_producer()
            except KafkaError as e:
                raise await self._outside_transaction(e, retriable=True) from e
        if self._renewed:  # until the check passed once: a failed check (an outage) is retried with the batch
            await self._check_still_ours()
            self._renewed = False
        return self._producer

    async def _check_still_ours(self) -> None:
        """After an expired transaction, make sure nobody committed under our identity meanwhile.

        The broker reports an expired transaction as it reports a fence (the same INVALID_PRODUCER_EPOCH); a
        new producer of ours then fences whoever took over. Their commits are visible in our cursors: if any
        differs from what we last committed, they were real, and writing on would publish twice.
        """
        stored = await read_cursors(self.settings, self.instance)
        moved = sorted(g for g, c in self._committed.items() if stored.get(g) != c)
        if moved:
            raise self._fenced(f"(their cursors of {len(moved)} groups, e.g. {moved[0]}, differ from ours)")
        log.info("no other writer used transactional id %s while its transaction had expired", self.transactional_id)

    def _fenced(self, detail: str = "") -> FencedError:
        return FencedError(
            f"another emitter took over transactional id {self.transactional_id!r} "
            "(same kafka.transactional_id_prefix and emitter.instance): stopping so that nothing is written twice"
            + (f" {detail}" if detail else "")
        )

    async def _close(
        self, producer: AIOKafkaProducer, *, open_transaction: bool, within: float = _ABORT_WITHIN
    ) -> None:
        """Abort what the producer left open (bounded), then stop it (bounded; briefly if the abort went
        unanswered, since stopping flushes into the same unresponsive broker)."""
        clean = await _abort(producer, within) if open_transaction else True
        limit = _STOP_WITHIN if clean else _HURRIED
        try:
            async with asyncio.timeout(limit):
                await producer.stop()
        except TimeoutError:
            log.warning("the Kafka producer did not stop within %.0f s (broker unresponsive); leaving it", limit)
        except Exception as e:
            log.debug("ignoring error while stopping a failed producer: %s", e)

    async def _outside_transaction(self, error: KafkaError, *, retriable: bool) -> EmitterError:
        """What a failure to start, provision or create a producer means: refused, denied, or an outage."""
        refused = await refusal(self.settings, error)
        if refused is not None:
            return refused
        kind = classify(error, transaction_timeout=self.settings.transaction_timeout_ms / 1000)
        if kind is Kind.DENIED:
            return FatalError(self._denial(error))
        if kind is Kind.CONFIG:
            return ConfigError(f"Kafka refused the configuration: {type(error).__name__}: {error}")
        message = f"Kafka at {self._bootstrap} is not reachable: {error}"
        return RetriableError(message) if retriable else FatalError(message)

    def _denial(self, error: BaseException) -> str:
        s = self.settings
        principal = f"user {s.sasl_username!r}" if s.sasl_username else "this client"
        topics = ", ".join(repr(t) for t in (s.topic, s.cursor_topic))
        return denial(error, principal=principal, topics=topics, transactional_id=self.transactional_id)

    # --- one transaction ---------------------------------------------------------------------------------

    def _oversized(self, event: MessageEvent, size: int) -> tuple[str, bytes, list[tuple[str, bytes]]]:
        """Where an oversized event goes and as what: cut to fit, on the main or the dead-letter topic."""
        s = self.settings
        _cut, value = fit(event, self.encoder.encode, self._record_limit)
        reason = f"record of {size} bytes exceeds kafka.max_record_bytes={self._record_limit}"
        where = {"group_id": event.group.id, "message_id": event.message_id}
        log.warning(
            "group %d message %d: %s (%s)", event.group.id, event.message_id, reason, s.oversize_policy, extra=where
        )
        if s.oversize_policy == "dead-letter":
            return s.dead_letter_topic, value, [("emitter-dlq-reason", reason.encode())]
        return s.topic, value, []

    def _records(self, batch: Batch) -> dict[str, list[_Record]]:
        """The batch's events encoded, by target topic (oversized ones cut or dead-lettered)."""
        topic = self.settings.topic
        headers = [("content-type", self.encoder.content_type.encode()), *inject_headers()]
        by_topic: dict[str, list[_Record]] = {}
        main: list[_Record] = []
        encode, limit = self.encoder.encode, self._record_limit
        keys: dict[int, bytes] = {}  # a batch holds few groups: each key is made once
        for event in batch.events:
            gid = event.group.id
            key = keys.get(gid)
            if key is None:
                key = keys[gid] = str(gid).encode()
            value = encode(event)
            if len(value) <= limit:
                main.append((key, value, headers))
                continue
            target, value, dlq_headers = self._oversized(event, len(value))
            if target == topic:
                main.append((key, value, headers + dlq_headers))
            else:
                by_topic.setdefault(target, []).append((key, value, headers + dlq_headers))
        return {topic: main, **by_topic} if main else by_topic

    async def _send_transaction(self, producer: AIOKafkaProducer, batch: Batch) -> set[int]:
        """Begin, send everything, commit; the partitions the records went to."""
        topic = self.settings.topic
        by_topic = self._records(batch)
        futures: list[asyncio.Future[Any]] = []
        partitions: set[int] = set()
        began = time.monotonic()
        try:
            await producer.begin_transaction()
            self._open_since = began
            for target, records in by_topic.items():
                sent, used = await _send_batches(producer, target, records)
                futures += sent
                if target == topic:
                    partitions = used
            for gid, cursor in batch.cursors.items():
                futures.append(
                    await producer.send(
                        self.settings.cursor_topic,
                        key=cursor_key(self.instance, gid),
                        value=cursor.to_bytes(),
                        headers=[("content-type", _CURSOR_CONTENT_TYPE)],
                    )
                )
            await _delivered(producer, futures)
            await producer.commit_transaction()
        except (KafkaError, IllegalOperation) as e:
            _retrieve(futures)
            error = _why_not_in_transaction(producer, e) if isinstance(e, IllegalOperation) else e
            largest = max((len(r[1]) for records in by_topic.values() for r in records), default=0)
            raise await self._failed(producer, error, time.monotonic() - began, largest) from error
        except BaseException:
            # A cancellation (the drain's bound) or a bug, possibly inside commit_transaction: this producer
            # is no longer known to be clean. It is never used again; stop() aborts what it left open.
            _retrieve(futures)
            if self._producer is producer:
                self._producer = None
                self._abandoned.append(producer)
            self._open_since = None
            raise
        self._open_since = None
        self._committed.update(batch.cursors)
        return partitions

    async def _failed(self, producer: AIOKafkaProducer, error: KafkaError, age: float, largest: int) -> EmitterError:
        """End the failed transaction (abort, or discard the producer) and say what the failure means."""
        timeout = self.settings.transaction_timeout_ms / 1000
        kind = classify(error, transaction_age=age, transaction_timeout=timeout)
        gone = kind in (Kind.FENCED, Kind.EXPIRED)  # the broker already ended the transaction
        clean = not gone and await _abort(producer)
        self._open_since = None
        if not clean:
            self._producer = None
            await self._close(producer, open_transaction=False)
        if kind is Kind.FENCED:
            return self._fenced()
        if kind is Kind.EXPIRED:
            self._renewed = True
            log.warning(
                "the Kafka transaction expired after %.1f s open (kafka.transaction_timeout_ms=%d; the broker "
                "aborted it, e.g. during an outage): not a fence; a new producer retries the batch (%s)",
                age,
                self.settings.transaction_timeout_ms,
                type(error).__name__,
            )
            return RetriableError(f"Kafka transaction expired after {age:.1f} s: {type(error).__name__}")
        if kind is Kind.DENIED:
            return FatalError(self._denial(error))
        if kind is Kind.CONFIG:
            return FatalError(f"Kafka refused the transaction: {type(error).__name__}: {error}")
        if kind is Kind.REFUSED_RECORD:
            return self._refused_record(error, largest)
        return RetriableError(f"Kafka transaction failed: {type(error).__name__}: {error}")

    def _refused_record(self, error: KafkaError, largest: int) -> EmitterError:
        """The broker refused a record we sent: let the oversize policy take the largest one next time."""
        limit = min(self._record_limit, largest) - 1
        if limit < _MIN_RECORD_BYTES:
            return FatalError(
                f"Kafka refuses records of {largest} bytes on topic {self.settings.topic!r} ({type(error).__name__}):"
                " raise the topic's max.message.bytes, or lower kafka.max_record_bytes below it"
            )
        log.warning(
            "Kafka refused a record (%s); records over %d bytes now go through kafka.oversize_policy=%s",
            type(error).__name__,
            limit,
            self.settings.oversize_policy,
        )
        self._record_limit = limit
        return RetriableError(f"Kafka refused a record: {type(error).__name__}; retrying at {limit} bytes")


async def _abort(producer: AIOKafkaProducer, within: float = _ABORT_WITHIN) -> bool:
    """Abort the producer's open transaction; True when the producer is clean afterwards and can be reused.

    Bounded: against a hung broker the abort is sent without waiting for its answer (see
    `_abort_unacknowledged`), and the producer is not reused.
    """
    state = _txn_state(producer)
    if state == "READY":
        return True
    try:
        async with asyncio.timeout(within):
            if state in _ENDABLE:
                await producer.abort_transaction()
            elif state in _ENDING:  # cancelled inside commit/abort: let aiokafka finish what it started
                await asyncio.shield(producer._txn_manager.wait_for_transaction_end())
        if _txn_state(producer) == "READY":
            return True
    except TimeoutError:
        log.warning(
            "the Kafka transaction did not abort within %.0f s; telling the coordinator directly", _ABORT_WITHIN
        )
    except (KafkaError, AssertionError) as e:  # aiokafka asserts on a state its sender changed meanwhile
        log.debug("abort failed (%s: %s); telling the coordinator directly", type(e).__name__, e)
    await _abort_unacknowledged(producer)
    return False


async def _abort_unacknowledged(producer: AIOKafkaProducer) -> None:
    """Write an EndTxn(abort) to the transaction coordinator without waiting for the answer.

    aiokafka aborts only after the transaction's sends are acknowledged. A broker that hangs (a paused VM, a
    stopped process) acknowledges nothing, and a process that exits leaves the transaction open until the
    broker times it out, holding back every read_committed consumer of its partitions meanwhile. A request
    written on the coordinator connection we already hold waits in the socket instead, and the broker acts
    on it when it resumes, even after we have gone. Uses aiokafka's internals: it has no public way to do it.
    """
    try:
        txn = producer._txn_manager
        node = producer._sender._coordinators.get(CoordinationType.TRANSACTION)
        conn = producer.client._conns.get((node, ConnectionGroup.COORDINATION)) if node is not None else None
        if conn is None or not conn.connected() or txn.producer_id < 0:
            log.debug("no coordinator connection to send an abort on")
            return
        request = EndTxnRequest(txn.transactional_id, txn.producer_id, txn.producer_epoch, False)
        async with asyncio.timeout(1.0):
            await conn.send(request, expect_response=False)
        log.info("abort of the open transaction sent to the transaction coordinator (node %s)", node)
    except Exception as e:  # best effort on the way out; the broker's timeout remains the backstop
        log.debug("could not send the abort: %s: %s", type(e).__name__, e)


def _why_not_in_transaction(producer: AIOKafkaProducer, error: IllegalOperation) -> KafkaError:
    """The error that ended the transaction under our sends (aiokafka then refuses further sends with an
    IllegalOperation that hides it, e.g. after the broker denied adding a partition)."""
    ended = producer._txn_manager.wait_for_transaction_end()
    if ended.done() and not ended.cancelled() and isinstance(ended.exception(), KafkaError):
        cause: KafkaError = ended.exception()
        return cause
    return KafkaError(f"the transaction ended under its sends: {error}")


async def _delivered(producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]]) -> None:
    """Wait for every send, or for the first sign that the transaction can only be aborted.

    aiokafka fails a transaction it cannot complete (a topic it may not write, a fence) through its
    transaction waiter, not always through the sends' futures, which may then never resolve.
    """
    if not futures:
        return
    gathered = asyncio.gather(*futures)
    gathered.add_done_callback(lambda f: f.cancelled() or f.exception())
    ended = producer._txn_manager.wait_for_transaction_end()
    ended.add_done_callback(lambda f: f.cancelled() or f.exception())
    await asyncio.wait({gathered, ended}, return_when=asyncio.FIRST_COMPLETED)
    if gathered.done():
        gathered.result()
    else:
        ended.result()  # raises the transaction's error


_Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""Key, value and headers of one record."""


async def _send_batches(
    producer: AIOKafkaProducer, topic: str, records: list[_Record]
) -> tuple[list[asyncio.Future[Any]], set[int]]:
    """Send records as whole per-partition batches: one future per batch instead of one per record.

    Partitions come from the producer's default partitioner over the key (murmur2, as Java clients do), so
    each group lands where a plain send() would put it, in order.
    """
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    by_partition: dict[int, list[_Record]] = {}
    partition_of: dict[bytes, int] = {}
    for record in records:
        key = record[0]
        p = partition_of.get(key)
        if p is None:
            p = partition_of[key] = partitioner(key, partitions, partitions)
        by_partition.setdefault(p, []).append(record)
    futures: list[asyncio.Future[Any]] = []
    for p, items in by_partition.items():
        builder = producer.create_batch()
        for key, value, headers in items:
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                continue
            if builder.record_count():
                futures.append(await producer.send_batch(builder, topic, partition=p))
                builder = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                    continue
            # Larger than a whole batch: a record of its own (still below max_request_size).
            futures.append(await producer.send(topic, key=key, value=value, headers=headers, partition=p))
            builder = producer.create_batch()
        if builder.record_count():
            futures.append(await producer.send_batch(builder, topic, partition=p))
    return futures, set(by_partition)


def _retrieve(futures: list[asyncio.Future[Any]]) -> None:
    """Mark the failed sends' errors as seen: the batch's one error is already being raised."""
    for future in futures:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
