"""The Kafka sink: records and cursors committed in one transaction.

One transactional producer per emitter identity (``<prefix>-<instance>``). Starting it fences any older
producer of the same identity (and aborts that one's open transaction), so cursors are restored only after
the producer has started: what we read then is exactly what was committed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    ProducerFenced,
    SaslAuthenticationFailed,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.trace import Link, SpanKind, StatusCode, Tracer

from emitter.codec import Encoder, SchemaRegistry, message_schema
from emitter.cursor import GroupCursor
from emitter.errors import CursorTopicError, EmitterError, FatalError, FencedError, RetriableError
from emitter.lifecycle import Service
from emitter.oversize import fit
from emitter.protocols import Batch
from emitter.records import MessageEvent
from emitter.settings import KafkaSettings
from emitter.tracing import inject_headers
from emitter.tracing import tracer as default_tracer

log = logging.getLogger("emitter.kafka")

_TOPIC_ALREADY_EXISTS = 36
_CURSOR_CONTENT_TYPE = b"application/json"


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


def cursor_key(instance: str, group_id: int) -> bytes:
    """The compacted topic's key of one group's cursor: instances share the topic without clashing."""
    return f"{instance}:{group_id}".encode()


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
            await self._ensure_topics()
            if self.settings.schema_registry_url and self._encoder is None:
                registry = SchemaRegistry(self.settings.schema_registry_url)
                schema_id = await asyncio.to_thread(registry.register, f"{self.settings.topic}-value", message_schema())
                self._encoder = Encoder(confluent_schema_id=schema_id)
            self._producer = await self._new_producer()
        except KafkaError as e:
            raise await refusal(self.settings, e) or RetriableError(
                f"Kafka at {self._bootstrap} is not reachable: {e}"
            ) from e

    async def verify(self) -> dict[int, GroupCursor]:
        """Check topics and read this instance's cursors without starting a producer (which would fence
        a running emitter of the same identity)."""
        try:
            await self._ensure_topics()
        except KafkaError as e:
            raise await refusal(self.settings, e) or FatalError(
                f"Kafka at {self._bootstrap} is not reachable: {e}"
            ) from e
        return await self.load_cursors()

    async def stop(self) -> None:
        """Stop the producer; an open transaction is aborted by the broker (never half-visible)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

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
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(**connection_options(self.settings))
        await admin.start()
        try:
            s = self.settings
            response = await admin.create_topics(
                [
                    NewTopic(s.topic, s.partitions, s.replication_factor),
                    NewTopic(s.cursor_topic, 1, s.replication_factor, topic_configs={"cleanup.policy": "compact"}),
                    *(
                        [NewTopic(s.dead_letter_topic, 1, s.replication_factor)]
                        if s.oversize_policy == "dead-letter"
                        else []
                    ),
                ]
            )
            # create_topics reports per-topic failures in the response instead of raising.
            created = set()
            for topic, code, message in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise FatalError(f"cannot create topic {topic!r}: Kafka error {code} ({message})")
                if code == 0:
                    created.add(topic)
            if s.cursor_topic not in created:  # we just created it compacted; an older one must be checked
                policy = await _cleanup_policy(admin, s.cursor_topic)
                if policy != "compact":
                    raise CursorTopicError(
                        f"cursor topic {s.cursor_topic!r} has cleanup.policy={policy}: expected compact "
                        "(otherwise the cursors of quiet groups expire); recreate it or set kafka.cursor_topic"
                    )
        finally:
            await admin.close()

    async def load_cursors(self) -> dict[int, GroupCursor]:
        """This instance's committed cursors: the compacted topic read to its end, read_committed."""
        consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        try:
            await consumer.start()
        except KafkaError as e:
            await consumer.stop()
            raise await refusal(self.settings, e) or RetriableError(
                f"cannot read cursor topic {self.settings.cursor_topic!r}: {e}"
            ) from e
        try:
            return await _read_cursors(consumer, self.settings.cursor_topic, self.instance)
        except KafkaError as e:
            raise RetriableError(f"cannot read cursor topic {self.settings.cursor_topic!r}: {e}") from e
        finally:
            await consumer.stop()

    async def commit(self, batch: Batch) -> None:
        """Send the batch's records and cursors in one transaction, traced as one PRODUCER span."""
        if self._producer is None:
            try:
                self._producer = await self._new_producer()
            except KafkaError as e:
                raise await refusal(self.settings, e) or RetriableError(f"Kafka is not reachable: {e}") from e
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
                partitions = await self._send_transaction(self._producer, batch)
            except EmitterError as e:
                span.set_attribute("error.type", type(e.__cause__ or e).__name__)
                span.set_status(StatusCode.ERROR, str(e))
                raise
            if len(partitions) == 1:
                span.set_attribute("messaging.destination.partition.id", str(next(iter(partitions))))

    def _oversized(self, event: MessageEvent, size: int) -> tuple[str, bytes, list[tuple[str, bytes]]]:
        """Where an oversized event goes and as what: cut to fit, on the main or the dead-letter topic."""
        s = self.settings
        _cut, value = fit(event, self.encoder.encode, s.max_record_bytes)
        reason = f"record of {size} bytes exceeds kafka.max_record_bytes={s.max_record_bytes}"
        where = {"group_id": event.group.id, "message_id": event.message_id}
        log.warning(
            "group %d message %d: %s (%s)", event.group.id, event.message_id, reason, s.oversize_policy, extra=where
        )
        if s.oversize_policy == "dead-letter":
            return s.dead_letter_topic, value, [("emitter-dlq-reason", reason.encode())]
        return s.topic, value, []

    async def _send_transaction(self, producer: AIOKafkaProducer, batch: Batch) -> set[int]:
        """Begin, send everything, commit; the partitions the records went to."""
        topic = self.settings.topic
        headers = [("content-type", self.encoder.content_type.encode()), *inject_headers()]
        futures: list[asyncio.Future[Any]] = []
        by_topic: dict[str, list[_Record]] = {}
        for event in batch.events:
            key, value, target, record_headers = (
                str(event.group.id).encode(),
                self.encoder.encode(event),
                topic,
                headers,
            )
            if len(value) > self.settings.max_record_bytes:
                target, value, dlq_headers = self._oversized(event, len(value))
                record_headers = headers + dlq_headers
            by_topic.setdefault(target, []).append((key, value, record_headers))
        partitions: set[int] = set()
        try:
            await producer.begin_transaction()
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
            await asyncio.gather(*futures)
            await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed) as e:
            _retrieve(futures)
            self._producer = None
            await _quiet_stop(producer)
            raise FencedError(
                f"another emitter took over transactional id {self.transactional_id!r} "
                "(same kafka.transactional_id_prefix and emitter.instance): stopping so that nothing is written twice"
            ) from e
        except KafkaError as e:
            _retrieve(futures)
            # The aborted records stay invisible to read_committed consumers; the monitor retries the batch.
            self._producer = None
            await _quiet_stop(producer)
            raise RetriableError(f"Kafka transaction failed: {type(e).__name__}: {e}") from e
        return partitions


async def _cleanup_policy(admin: AIOKafkaAdminClient, topic: str, within: float = 15.0) -> str | None:
    """The topic's cleanup.policy; a topic created a moment ago may not be describable yet, so retry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        error_code, _message, _type, _name, entries = described[0].resources[0]
        if error_code == 0:
            return {e[0]: e[1] for e in entries}.get("cleanup.policy")
        if loop.time() >= deadline:
            raise RetriableError(f"cannot describe cursor topic {topic!r}: Kafka error {error_code}")
        await asyncio.sleep(0.2)


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


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    """Stop a producer that failed; a fresh one (same transactional id) aborts whatever it left open."""
    try:
        await producer.stop()
    except Exception as e:
        log.debug("ignoring error while stopping a failed producer: %s", e)


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


async def _read_cursors(consumer: AIOKafkaConsumer, topic: str, instance: str) -> dict[int, GroupCursor]:
    tps = await assign_all(consumer, topic)
    if not tps:
        return {}
    await consumer.seek_to_beginning(*tps)
    end: Mapping[TopicPartition, int] = await consumer.end_offsets(tps)
    prefix = f"{instance}:".encode()
    cursors: dict[int, GroupCursor] = {}
    pending = {tp for tp in tps if end[tp] > 0}
    while pending:
        chunk = await consumer.getmany(*pending, timeout_ms=500, max_records=10000)
        for records in chunk.values():
            for record in records:
                if record.key is None or not record.key.startswith(prefix):
                    continue
                group_id = int(record.key[len(prefix) :])
                if record.value is None:  # a tombstone forgets the group
                    cursors.pop(group_id, None)
                else:
                    cursors[group_id] = GroupCursor.from_bytes(record.value)
        pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    return cursors
