"""The schema registry: registering the record schema at start, and finding writer schemas by id.

Any Confluent-compatible registry (Confluent Schema Registry, Apicurio's ``/apis/ccompat/v7``, Karapace,
Redpanda) through confluent-kafka's maintained clients: `SchemaRegistry` is asynchronous (httpx under
asyncio, so the event loop never blocks) for the emitter and `emitter tail`; `BlockingSchemaRegistry` is for
plain consumer code that calls `decode()`. Both keep the schemas they fetched by id, so decoding many
records asks the registry once per schema, not once per record.

Errors come out as one line naming the registry and what to fix: an unreachable registry is a
`RetriableError` (the monitor retries with backoff), a refused schema, refused credentials or an untrusted
certificate are `FatalError`s. Passwords never appear in them, nor in `repr()`.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Final, Self

import httpx2
from confluent_kafka.schema_registry import (
    AsyncSchemaRegistryClient,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry import Schema as RegistrySchema
from pydantic import SecretStr

from emitter.codec import AvroRecord, Schema, confluent_schema_id, decode
from emitter.errors import EmitterError, FatalError, RetriableError
from emitter.lifecycle import Service
from emitter.settings import KafkaSettings, SubjectNameStrategy

_NOT_FOUND: Final = 404
_CONFLICT: Final = 409
_UNAUTHORIZED: Final = (401, 403)
_SERVER_ERROR: Final = 500
_JAVA_EXCEPTION_PREFIX: Final = re.compile(r"^(?:[\w$]+\.)+[\w$]*(?:Exception|Error): ")
_REQUEST_TIMEOUT: Final = 10.0
# What a request raises when no answer came (refused, reset, timed out, TLS failed): httpx2 is the HTTP
# client under confluent-kafka's registry clients.
_TRANSPORT_ERRORS: Final = (httpx2.TransportError, OSError)
_REQUEST_ERRORS: Final = (SchemaRegistryError, *_TRANSPORT_ERRORS)


def subject_name(strategy: SubjectNameStrategy, topic: str, record_name: str) -> str:
    """The registry subject of a topic's value schema under Confluent's naming strategies.

    Args:
        strategy: ``topic`` (TopicNameStrategy), ``record`` (RecordNameStrategy) or ``topic-record``
            (TopicRecordNameStrategy).
        topic: the records topic.
        record_name: the schema's full name (namespace included).
    """
    if strategy == "topic":
        return f"{topic}-value"
    if strategy == "record":
        return record_name
    return f"{topic}-{record_name}"


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Where the registry is and how to reach it; the password stays a `SecretStr` (hidden in repr)."""

    url: str
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> RegistryConfig:
        """The registry of `kafka.schema_registry_*`; the settings must name a URL."""
        if not settings.schema_registry_url:
            raise ValueError("kafka.schema_registry_url is not set")
        ca = settings.schema_registry_ssl_cafile
        return cls(
            settings.schema_registry_url,
            settings.schema_registry_username,
            settings.schema_registry_password,
            None if ca is None else str(ca),
        )

    def client_conf(self, *, retries: int) -> dict[str, Any]:
        """confluent-kafka's client configuration.

        Args:
            retries: attempts after a failed request, within the client (the emitter's own backoff is
                outside it, so the sink asks for none).
        """
        conf: dict[str, Any] = {"url": self.url, "timeout": _REQUEST_TIMEOUT, "max.retries": retries}
        if self.username is not None:
            password = self.password.get_secret_value() if self.password else ""
            conf["basic.auth.user.info"] = f"{self.username}:{password}"
        if self.ca_file is not None:
            conf["ssl.ca.location"] = self.ca_file
        return conf


def describe(config: RegistryConfig, error: BaseException, *, subject: str | None = None) -> EmitterError:
    """One line for a failed registry request: retriable when the registry was not reached or failed
    inside, fatal when it refused what we asked (a schema, the credentials, our trust in its certificate)."""
    where = f"schema registry at {config.url}"
    if isinstance(error, SchemaRegistryError):
        status, reason = error.http_status_code, _reason(error)
        if status == _CONFLICT and subject is not None:
            return FatalError(f"{where} refused the schema for subject {subject!r} as incompatible: {reason}")
        if status in _UNAUTHORIZED:
            user = "no user" if config.username is None else f"user {config.username!r}"
            return FatalError(
                f"{where} refused access for {user} (HTTP {status}): "
                "check kafka.schema_registry_username and kafka.schema_registry_password"
            )
        if status >= _SERVER_ERROR:
            return RetriableError(f"{where} failed (HTTP {status}): {reason}")
        about = f" for subject {subject!r}" if subject is not None else ""
        return FatalError(f"{where} refused the request{about} (HTTP {status}): {reason}")
    verify = _certificate_error(error)
    if verify is not None:
        trust = f"kafka.schema_registry_ssl_cafile {config.ca_file!r}" if config.ca_file else "the system's CAs"
        return FatalError(
            f"{where} presented a TLS certificate that failed verification against {trust} "
            f"({verify.verify_message}): kafka.schema_registry_ssl_cafile must be the CA that signed it"
        )
    return RetriableError(f"{where} unreachable: {_cause(error)}")


def _reason(error: SchemaRegistryError) -> str:
    """The registry's own message, without a Java exception class in front (Apicurio adds one)."""
    text = " ".join(str(error.error_message or "").split())
    return _JAVA_EXCEPTION_PREFIX.sub("", text) or f"error code {error.error_code}"


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _cause(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    inner = error.__cause__
    if inner is not None and str(inner) and str(inner) != text:
        text = f"{text} ({inner})"
    return " ".join(text.split())


def _not_found(config: RegistryConfig, schema_id: int) -> str:
    return (
        f"schema id {schema_id} is not in the schema registry at {config.url}: "
        "the record was written with another registry, or this one lost its schemas"
    )


def _registry_schema(schema: Schema) -> RegistrySchema:
    return RegistrySchema(json.dumps(schema.raw), "AVRO")


class SchemaRegistry(Service):
    """The asynchronous client: registers our schema at start, fetches writer schemas by id (cached).

    Args:
        config: the registry and its credentials.
        retries: attempts after a failed request inside the client; 0 when the caller retries itself.
    """

    def __init__(self, config: RegistryConfig, *, retries: int = 2) -> None:
        self.config = config
        self._retries = retries
        self._client: AsyncSchemaRegistryClient | None = None
        self._by_id: dict[int, Schema] = {}

    def __repr__(self) -> str:
        return f"SchemaRegistry(url={self.config.url!r}, cached={len(self._by_id)})"

    async def start(self) -> None:
        """Create the HTTP client (idempotent); no request is made yet."""
        if self._client is None:
            self._client = AsyncSchemaRegistryClient(self.config.client_conf(retries=self._retries))

    async def stop(self) -> None:
        """Close the HTTP client (idempotent); cached schemas stay usable."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _started(self) -> AsyncSchemaRegistryClient:
        if self._client is None:
            raise RuntimeError("SchemaRegistry is not started: use `async with SchemaRegistry(...)`")
        return self._client

    async def register(self, subject: str, schema: Schema) -> int:
        """Register `schema` under `subject` and return its id; the registry checks compatibility with the
        subject's earlier versions first (an identical schema gets its existing id)."""
        try:
            schema_id = int(await self._started().register_schema(subject, _registry_schema(schema)))
        except _REQUEST_ERRORS as e:
            raise describe(self.config, e, subject=subject) from e
        self._by_id[schema_id] = schema
        return schema_id

    async def fetch(self, schema_id: int) -> Schema:
        """The schema with this id, asked for once and then cached."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            found = await self._started().get_schema(schema_id)
        except SchemaRegistryError as e:
            if e.http_status_code == _NOT_FOUND:
                raise FatalError(_not_found(self.config, schema_id)) from e
            raise describe(self.config, e) from e
        except _TRANSPORT_ERRORS as e:
            raise describe(self.config, e) from e
        schema = Schema(json.loads(found.schema_str or "null"))
        self._by_id[schema_id] = schema
        return schema

    def schema_by_id(self, schema_id: int) -> Schema:
        """A schema already fetched (what `decode` asks); call `fetch` first for a new id."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise LookupError(f"schema id {schema_id} was not fetched: await fetch({schema_id}) first") from None

    async def decode(self, value: bytes) -> AvroRecord:
        """`codec.decode` for either framing, fetching a Confluent-framed value's schema the first time."""
        schema_id = confluent_schema_id(value)
        if schema_id is not None:
            await self.fetch(schema_id)
        return decode(value, registry=self)


async def register_value_schema(settings: KafkaSettings, schema: Schema) -> int:
    """Register the records topic's value schema under the configured subject strategy; returns its id.

    Raises:
        RetriableError: the registry was not reached (the caller retries with backoff).
        FatalError: the registry refused the schema (incompatible), the credentials or the certificate.
    """
    subject = subject_name(settings.subject_name_strategy, settings.topic, schema.full_name)
    async with SchemaRegistry(RegistryConfig.from_settings(settings), retries=0) as registry:
        return await registry.register(subject, schema)


class BlockingSchemaRegistry:
    """The synchronous client, for `decode(value, registry=...)` in plain consumer code: one request per
    schema id, then the parsed schema from memory.

    Args:
        config: the registry (a URL string is enough when it needs no credentials).
    """

    def __init__(self, config: RegistryConfig | str) -> None:
        self.config = RegistryConfig(config) if isinstance(config, str) else config
        self._client = SchemaRegistryClient(self.config.client_conf(retries=2))
        self._by_id: dict[int, Schema] = {}

    def __repr__(self) -> str:
        return f"BlockingSchemaRegistry(url={self.config.url!r}, cached={len(self._by_id)})"

    def schema_by_id(self, schema_id: int) -> Schema:
        """The schema with this id, asked for once and then cached.

        Raises:
            ValueError: the registry has no schema with this id.
            EmitterError: the registry could not be asked (`RetriableError` when unreachable).
        """
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            found = self._client.get_schema(schema_id)
        except SchemaRegistryError as e:
            if e.http_status_code == _NOT_FOUND:
                raise ValueError(_not_found(self.config, schema_id)) from e
            raise describe(self.config, e) from e
        except _TRANSPORT_ERRORS as e:
            raise describe(self.config, e) from e
        schema = Schema(json.loads(found.schema_str or "null"))
        self._by_id[schema_id] = schema
        return schema

    def close(self) -> None:
        """Close the HTTP connections (idempotent); cached schemas stay usable."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
