"""Provisioning: make sure the records, cursor and dead-letter topics exist, and that the cursor topic is
compacted.

Topics that exist are left alone, found through metadata first, so a principal without the CREATE ACL can
run against topics an administrator made; `kafka.create_topics = false` forbids creating them at all.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAuthorizationFailedError, for_code

from emitter.errors import ConfigError, CursorTopicError, FatalError, RetriableError
from emitter.kafka_client import connection_options
from emitter.kafka_errors import Kind, classify
from emitter.settings import KafkaSettings

__all__ = ["ensure_topics"]

log = logging.getLogger("emitter.kafka")

_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29


def wanted_topics(settings: KafkaSettings) -> list[NewTopic]:
    """The topics this configuration writes to, as they would be created."""
    s = settings
    topics = [
        NewTopic(s.topic, s.partitions, s.replication_factor),
        NewTopic(s.cursor_topic, 1, s.replication_factor, topic_configs={"cleanup.policy": "compact"}),
    ]
    if s.oversize_policy == "dead-letter":
        topics.append(NewTopic(s.dead_letter_topic, 1, s.replication_factor))
    return topics


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the missing topics (if allowed) and refuse a cursor topic that is not compacted."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        wanted = wanted_topics(settings)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        created = await _create(admin, settings, missing) if missing else set()
        if settings.cursor_topic not in created:  # we just created it compacted; an older one must be checked
            await _check_compacted(admin, settings.cursor_topic)
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, settings: KafkaSettings, missing: list[NewTopic]) -> set[str]:
    names = ", ".join(repr(t.name) for t in missing)
    if not settings.create_topics:
        raise FatalError(
            f"topic {names} does not exist and kafka.create_topics = false: create it (see README, Kafka) "
            "or allow the emitter to"
        )
    response = await admin.create_topics(missing)
    created: set[str] = set()
    # create_topics reports per-topic failures in the response instead of raising.
    for topic, code, message in response.topic_errors:
        if code == 0:
            created.add(topic)
            log.info("created topic %s", topic)
        elif code != _TOPIC_ALREADY_EXISTS:
            raise _creation_error(topic, code, message)
    return created


def _creation_error(topic: str, code: int, message: str | None) -> FatalError | ConfigError:
    error = for_code(code)(message)
    kind = classify(error, transaction_timeout=0)
    if kind is Kind.DENIED or code == _TOPIC_AUTHORIZATION_FAILED:
        return FatalError(
            f"Kafka denied creating topic {topic!r} (CREATE ACL on the topic or cluster): grant it, or create the "
            "topics beforehand (kafka.create_topics = false then never tries)"
        )
    if kind is Kind.CONFIG:
        return ConfigError(
            f"Kafka refused to create topic {topic!r} as configured: {type(error).__name__} ({message}): "
            "check kafka.partitions and kafka.replication_factor"
        )
    return FatalError(f"cannot create topic {topic!r}: Kafka error {code} ({message})")


async def _check_compacted(admin: AIOKafkaAdminClient, topic: str) -> None:
    try:
        policy = await _cleanup_policy(admin, topic)
    except TopicAuthorizationFailedError:
        log.warning("cannot check cleanup.policy of cursor topic %s: DESCRIBE_CONFIGS is not granted", topic)
        return
    if policy != "compact":
        raise CursorTopicError(
            f"cursor topic {topic!r} has cleanup.policy={policy}: expected compact "
            "(otherwise the cursors of quiet groups expire); recreate it or set kafka.cursor_topic"
        )


async def _cleanup_policy(admin: AIOKafkaAdminClient, topic: str, within: float = 15.0) -> str | None:
    """The topic's cleanup.policy; a topic created a moment ago may not be describable yet, so retry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        error_code, _message, _type, _name, entries = described[0].resources[0]
        if error_code == 0:
            return {e[0]: e[1] for e in entries}.get("cleanup.policy")
        if error_code == _TOPIC_AUTHORIZATION_FAILED:
            raise TopicAuthorizationFailedError(topic)
        if loop.time() >= deadline:
            raise RetriableError(f"cannot describe cursor topic {topic!r}: Kafka error {error_code}")
        await asyncio.sleep(0.2)
