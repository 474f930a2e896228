"""Configuration: defaults < INI file < environment < command-line flags, validated at start-up.

The INI layout is the one tgdata users already have (``[telegram] api_id / api_hash / session_file /
phone``), with ``[kafka]``, ``[emitter]`` and ``[telemetry]`` beside it. Environment variables are
``EMITTER_<SECTION>__<KEY>`` (for example ``EMITTER_KAFKA__BOOTSTRAP_SERVERS``), plus the container-friendly
``TELEGRAM_API_ID``, ``TELEGRAM_API_HASH`` and ``TELEGRAM_SESSION``. Unknown keys and bad values fail with
one line that names the key and what was expected (`ConfigError`); secrets are `SecretStr` and are never
echoed back.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from emitter.errors import ConfigError
from emitter.telegram_proxy import Proxy, parse_proxy

ENV_PREFIX = "EMITTER_"
ENV_ALIASES: Mapping[str, tuple[str, str]] = {
    "TELEGRAM_API_ID": ("telegram", "api_id"),
    "TELEGRAM_API_HASH": ("telegram", "api_hash"),
    "TELEGRAM_SESSION": ("telegram", "session"),
}
"""Short variables that container platforms and tgdata users already set."""

_GROUP_SPEC = re.compile(
    r"""^(?:
        -?\d+                                         # marked id: -100…, -…, or a user id
      | @?[A-Za-z][A-Za-z0-9_]{3,31}                  # @username
      | (?:https?://)?(?:t|telegram)\.me/[A-Za-z][A-Za-z0-9_]{3,31}/?  # t.me link
    )$""",
    re.VERBOSE,
)
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_LANG = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")

SubjectNameStrategy = Literal["topic", "record", "topic-record"]
"""Confluent's subject naming: TopicNameStrategy, RecordNameStrategy, TopicRecordNameStrategy."""

_ini_path: ContextVar[Path | None] = ContextVar("_ini_path", default=None)


def _split_list(value: Any) -> Any:
    """INI and environment give lists as comma-separated text."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramSettings(_Section):
    """The Telegram account and the groups to monitor."""

    api_id: int | None = Field(default=None, gt=0, description="API id from my.telegram.org.")
    api_hash: SecretStr | None = Field(default=None, description="API hash from my.telegram.org.")
    session: SecretStr | None = Field(default=None, description="A StringSession (wins over session_file).")
    session_file: Path | None = Field(default=None, description="Telethon session file.")
    phone: str | None = Field(default=None, description="Phone number, for `emitter login` only.")
    proxy: SecretStr | None = Field(
        default=None,
        description="socks5://user:pass@host:port, socks4://, http:// or mtproxy://secret@host:port (secret).",
    )
    require_proxy: bool = Field(
        default=False, description="Refuse to start without telegram.proxy; never connect to Telegram directly."
    )
    groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Groups: marked ids, @usernames or t.me links, comma-separated."
    )
    # Device identity: what Telegram shows in the account's active sessions. Unset keys come from the identity
    # `emitter login` recorded beside the session file, else from Telethon's defaults (README: device identity).
    device_model: str | None = Field(
        default=None, min_length=1, max_length=128, description="Device identity: model (login records it)."
    )
    system_version: str | None = Field(
        default=None, min_length=1, max_length=128, description="Device identity: operating system version."
    )
    app_version: str | None = Field(
        default=None, min_length=1, max_length=128, description="Device identity: application version."
    )
    lang_code: str | None = Field(
        default=None, pattern=_LANG.pattern, description="Device identity: client language (ISO 639-1, e.g. en)."
    )
    system_lang_code: str | None = Field(
        default=None, pattern=_LANG.pattern, description="Device identity: system language (e.g. en-US)."
    )
    flood_sleep_threshold: int = Field(
        default=60, ge=0, description="FloodWaits longer than this many seconds make the account's state `waiting`."
    )
    sweep_interval: float = Field(default=30.0, gt=0, description="Seconds between gap-filling sweeps (±20 %).")
    backfill_concurrency: int = Field(default=2, ge=1, le=100, description="Groups backfilling at once.")
    pacing: str = Field(
        default="",
        pattern=r"^[a-z]+=[0-9.]+(/[0-9.]+)?(,[a-z]+=[0-9.]+(/[0-9.]+)?)*$|^$",
        description="Request rates per kind, kind=rate/burst comma-separated (README: request gateway).",
    )
    max_requests_per_second: float = Field(
        default=3.0, gt=0, le=100, description="All Telegram requests of the account together, on average."
    )
    max_request_burst: int = Field(default=10, ge=1, le=1000, description="All requests together, at once.")
    recheck_interval: float = Field(
        default=300.0, gt=0, description="Seconds between checks of a group the account lost access to."
    )
    takeout: bool = Field(
        default=False, description="Backfill through a takeout session (Telegram's bulk export, lower limits)."
    )
    join_channels: bool = Field(
        default=False, description="Join public channels the account is not in (Telegram pushes nothing else)."
    )
    follow_comments: bool = Field(
        default=False,
        description="Also follow each channel's linked discussion group (its comments), records linked to the post.",
    )
    unjoined_sweep_interval: float = Field(
        default=10.0, gt=0, description="Sweep interval of channels the account has not joined."
    )
    unreachable_after: float = Field(
        default=60.0, gt=0, description="Seconds Telegram may be unreachable before /readyz says not ready."
    )
    read_budget_per_day: int = Field(
        default=0,
        ge=0,
        description="Messages backfill walks may read per rolling 24 h, kept in the cursors (0: unlimited).",
    )
    stall_after: float = Field(
        default=900.0, gt=0, description="Seconds a group behind may go without progress before not ready."
    )
    rescan_window: int = Field(
        default=500,
        ge=0,
        le=10000,
        description="Newest messages per group re-read and compared when Telegram says too long (window/100 requests).",
    )
    rescan_on_start: bool = Field(
        default=True,
        description="Rescan every group's window on start: reaction changes while away are not in the difference.",
    )
    live_buffer_bytes: int = Field(
        default=64 * 2**20,
        ge=2**20,
        description="Bytes of queued live events over all groups; past it, a group catches up instead.",
    )

    _split_groups = field_validator("groups", mode="before")(_split_list)
    _proxy: Proxy | None = PrivateAttr(default=None)

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, proxy: SecretStr | None) -> SecretStr | None:
        if proxy is not None:
            parse_proxy(proxy.get_secret_value())  # the error masks the password
        return proxy

    @model_validator(mode="after")
    def _keep_proxy(self) -> TelegramSettings:
        # The parsed value is kept beside the SecretStr; its repr leaves the password out.
        self._proxy = parse_proxy(self.proxy.get_secret_value()) if self.proxy is not None else None
        return self

    @property
    def proxy_route(self) -> Proxy | None:
        """The parsed `proxy` (None: connect directly)."""
        return self._proxy

    @field_validator("pacing")
    @classmethod
    def _check_pacing(cls, pacing: str) -> str:
        from emitter.telegram_gateway import parse_paces  # noqa: PLC0415 - Telethon only when Telegram is used

        parse_paces(pacing)
        return pacing

    @field_validator("groups")
    @classmethod
    def _check_groups(cls, groups: list[str]) -> list[str]:
        for spec in groups:
            if not _GROUP_SPEC.match(spec):
                raise ValueError(f"{spec!r} is not a group: expected a numeric marked id, @username or t.me link")
        return groups


class KafkaSettings(_Section):
    """Where records and cursors go."""

    bootstrap_servers: Annotated[list[str], NoDecode] | None = Field(
        default=None, description="host:port list; unset means the embedded file sink."
    )
    topic: str = Field(default="telegram-messages", pattern=_NAME.pattern, description="Topic of the message records.")
    cursor_topic: str = Field(
        default="telegram-emitter-cursors",
        pattern=_NAME.pattern,
        description="Compacted topic of the per-group cursors.",
    )
    partitions: int = Field(default=3, gt=0, le=10000, description="Partitions of the records topic when created.")
    replication_factor: int = Field(default=1, gt=0, le=32767, description="Replicas of both topics when created.")
    create_topics: bool = Field(
        default=True, description="Create missing topics (needs CREATE); false: a missing topic is an error."
    )
    transactional_id_prefix: str = Field(
        default="telegram-emitter", pattern=_NAME.pattern, description="Transactional id is <prefix>-<instance>."
    )
    transaction_timeout_ms: int = Field(
        default=60000, ge=1000, le=900000, description="Broker aborts a transaction left open this long."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(default=None, description="SASL user.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle that signed the brokers' certificates.")
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=10_000,
        le=100_000_000,
        description="Largest record value; keep below the topic's max.message.bytes.",
    )
    oversize_policy: Literal["truncate", "dead-letter"] = Field(
        default="truncate", description="A larger record: truncate (flagged) or dead-letter (not on the main topic)."
    )
    dead_letter_topic: str = Field(
        default="telegram-messages-dlq", pattern=_NAME.pattern, description="Where dead-letter records go."
    )
    compression: Literal["none", "gzip", "lz4", "snappy", "zstd"] = Field(
        default="none", description="none or gzip (lz4, snappy, zstd need aiokafka's extras)."
    )
    schema_registry_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="Confluent-compatible registry: switches to its framing."
    )
    subject_name_strategy: SubjectNameStrategy = Field(
        default="topic", description="Registry subject: topic (<topic>-value), record or topic-record."
    )
    schema_registry_username: str | None = Field(default=None, description="Registry basic-auth user.")
    schema_registry_password: SecretStr | None = Field(
        default=None, description="Registry basic-auth password (secret)."
    )
    schema_registry_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the registry's certificate (https)."
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> Any:
        value = _split_list(value)
        return value or None

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, servers: list[str] | None) -> list[str] | None:
        for server in servers or ():
            port = server.rsplit(":", 1)[-1]
            if not _HOST_PORT.match(server) or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not a broker address: expected host:port, for example 127.0.0.1:9092")
        return servers

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, url: str | None) -> str | None:
        # Credentials inside the URL would end up in every log line and error that names the registry.
        if url is not None and "@" in url.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "schema_registry_url carries credentials: put them in schema_registry_username and "
                "schema_registry_password instead"
            )
        return url

    @model_validator(mode="after")
    def _check_registry_auth(self) -> KafkaSettings:
        if (self.schema_registry_username is None) != (self.schema_registry_password is None):
            raise ValueError("schema_registry_username and schema_registry_password go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _check_sasl(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        return self


class EmitterSettings(_Section):
    """The emitter's own behaviour."""

    instance: str = Field(
        default="default", pattern=_NAME.pattern, description="Identity: cursor keys, transactional id."
    )
    source: Literal["auto", "demo", "export", "telegram"] = Field(
        default="auto",
        description="auto: telegram when api_id is set, export when export_path is, else demo (never into Kafka).",
    )
    sink: Literal["auto", "kafka", "file"] = Field(
        default="auto", description="auto: kafka when bootstrap_servers is set, else file."
    )
    data_dir: Path = Field(default=Path("data"), description="File sink output and embedded state.")
    export_path: Path | None = Field(default=None, description="Telegram Desktop export: result.json or its folder.")
    batch_size: int = Field(
        default=500,
        gt=0,
        le=100000,
        description=(
            "Records at which a transaction starts without waiting for batch_timeout_ms; what arrives while "
            "one commits joins the next, so a transaction can hold up to max_in_flight."
        ),
    )
    batch_timeout_ms: int = Field(
        default=200, gt=0, le=600000, description="Longest wait before a partial batch commits."
    )
    max_in_flight: int = Field(default=10000, gt=0, description="Events buffered before sources are slowed.")
    drain_timeout: float = Field(default=20.0, gt=0, description="Seconds to commit and stop after SIGTERM.")
    heartbeat_interval: float = Field(
        default=60.0, gt=0, description="Seconds a quiet group waits before its cursor says it is alive."
    )
    file_rotate_bytes: int = Field(
        default=64 * 1024 * 1024, ge=4096, description="File sink: rotate a group's file past this size."
    )
    demo_groups: int = Field(default=2, gt=0, le=1000, description="Demo: how many simulated groups.")
    demo_history: int = Field(default=1000, ge=0, description="Demo: messages already in each group's history.")
    demo_rate: float = Field(default=5.0, gt=0, description="Demo: new messages per second per group.")
    demo_limit: int | None = Field(default=None, gt=0, description="Demo: stop each group after this many messages.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text on a terminal, JSON lines otherwise."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TelemetrySettings(_Section):
    """Traces and metrics."""

    service_name: str = Field(default="telegram-emitter", pattern=_NAME.pattern, description="service.name of traces.")
    otlp_endpoint: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="OTLP/HTTP endpoint for traces; unset: no export."
    )
    sampling_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of traces kept, 0 to 1; unset: OTEL_TRACES_SAMPLER or all."
    )
    http_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; unset: no HTTP server."
    )
    # Loopback by default: /metrics is for this machine unless asked. The image and the chart set 0.0.0.0, since
    # a kubelet's probes and a scraper reach a pod on its own address.
    http_host: str = Field(
        default="127.0.0.1", description="Address the HTTP server binds (the image and the chart set 0.0.0.0)."
    )


MEDIA_TYPES = ("photo", "document", "video", "video_note", "voice", "audio", "animation", "sticker")
"""Values of a record's `media.type` whose bytes can be stored (emitter/telegram_mapping.py names them)."""


def _parse_media_groups(value: Any) -> Any:
    """INI and environment give per-group overrides as ``ID: types=photo|video, max_bytes=N; ID: …``.

    A JSON object (``{"-100…": {"types": […]}}``) is accepted too, for code and container platforms.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return json.loads(text)
    out: dict[str, dict[str, Any]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        group, sep, body = entry.partition(":")
        if not sep:
            raise ValueError(f"{entry!r} is not a group override: expected ID: types=photo|video, max_bytes=N")
        fields: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in body.split(","))):
            key, eq, val = pair.partition("=")
            if not eq:
                raise ValueError(f"{pair!r} in the override of {group.strip()} is not key=value")
            key = key.strip()
            fields[key] = [t.strip() for t in val.split("|") if t.strip()] if key == "types" else val.strip()
        out[group.strip()] = fields
    return out


class MediaGroupOverride(_Section):
    """What one group stores instead of the `[media]` defaults (unset keys keep them)."""

    types: tuple[str, ...] | None = Field(default=None, description="Media types stored; empty: none.")
    max_bytes: int | None = Field(default=None, ge=0, description="Largest file stored; 0: none.")

    @field_validator("types", mode="before")
    @classmethod
    def _none_means_empty(cls, value: Any) -> Any:
        return [] if value in (["none"], "none") else _split_list(value)

    @field_validator("types")
    @classmethod
    def _check_types(cls, types: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if types is None else _check_media_types(types)


def _check_media_types(types: tuple[str, ...]) -> tuple[str, ...]:
    for kind in types:
        if kind not in MEDIA_TYPES:
            raise ValueError(
                f"{kind!r} is not a media type whose bytes can be stored: expected {', '.join(MEDIA_TYPES)}"
            )
    return types


class MediaSettings(_Section):
    """Media bytes into an S3-compatible object store (README: media storage)."""

    enabled: bool = Field(default=False, description="Download media and store it in the bucket.")
    endpoint_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="S3 endpoint; unset: the SDK's AWS default for region."
    )
    bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket of the media objects (required when enabled).",
    )
    prefix: str = Field(
        default="",
        pattern=r"^$|^[A-Za-z0-9!_.*'()/-]*/$",
        description="Key prefix, empty or ending in /; objects are <prefix>media/<sha256>.",
    )
    region: str = Field(
        default="us-east-1", pattern=r"^[a-z0-9-]{1,40}$", description="Region the requests are signed for."
    )
    access_key_id: str | None = Field(default=None, description="Access key id; unset: the SDK's credential chain.")
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key (secret).")
    create_bucket: bool = Field(default=True, description="Create a missing bucket; false: a missing bucket is fatal.")
    part_size: int = Field(
        default=8 * 2**20,
        ge=5 * 2**20,
        le=5 * 2**30,
        description="Multipart part size in bytes (S3: 5 MiB to 5 GiB); smaller files go in one PUT.",
    )
    types: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("photo", "document", "video", "video_note", "voice", "audio", "animation"),
        description="Media types stored (sticker also possible), comma-separated.",
    )
    max_bytes: int = Field(
        default=100 * 2**20, ge=0, description="Largest file stored; larger ones keep metadata only."
    )
    groups: Annotated[dict[int, MediaGroupOverride], NoDecode] = Field(
        default_factory=dict,
        description="Per-group overrides by marked id: `ID: types=photo|video, max_bytes=N; ID: types=none`.",
    )
    download_concurrency: int = Field(default=2, ge=1, le=64, description="Downloads at once per account.")
    bytes_per_day: int = Field(default=0, ge=0, description="Bytes downloaded per rolling 24 h (0: unlimited).")
    spool_dir: Path | None = Field(
        default=None,
        description="Where downloads are spooled, one directory per emitter (a restart continues what it holds); "
        "unset: a temp directory of the process's own, removed when it stops.",
    )

    _split_types = field_validator("types", mode="before")(_split_list)
    _parse_groups = field_validator("groups", mode="before")(_parse_media_groups)

    @field_validator("types")
    @classmethod
    def _check_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        return _check_media_types(types)

    @model_validator(mode="after")
    def _check_enabled(self) -> MediaSettings:
        if self.enabled and self.bucket is None:
            raise ValueError("bucket is required when enabled: expected an S3 bucket name")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together: set both or neither")
        return self


class _IniSource(InitSettingsSource):
    """The INI file, read as nested sections."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, init_kwargs=read_ini(_ini_path.get()))


class _AliasSource(InitSettingsSource):
    """TELEGRAM_API_ID and friends."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        nested: dict[str, dict[str, str]] = {}
        for var, (section, key) in ENV_ALIASES.items():
            if var in os.environ:
                nested.setdefault(section, {})[key] = os.environ[var]
        super().__init__(settings_cls, init_kwargs=nested)


class Settings(BaseSettings):
    """All configuration of one emitter instance."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    telegram: TelegramSettings = TelegramSettings()
    kafka: KafkaSettings = KafkaSettings()
    emitter: EmitterSettings = EmitterSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    media: MediaSettings = MediaSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: flags, EMITTER_* variables, short aliases, the INI file, then defaults.
        return init_settings, env_settings, _AliasSource(settings_cls), _IniSource(settings_cls)

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
        # Not `source_kind`: commands that never read a source (tail, login) must load without one.
        source = self._source_or_none()
        if source == "telegram":
            if self.telegram.api_id is None:
                raise ValueError(
                    "telegram.api_id is required by the telegram source: expected the API id from my.telegram.org"
                )
            if self.telegram.api_hash is None:
                raise ValueError(
                    "telegram.api_hash is required by the telegram source: expected the API hash from my.telegram.org"
                )
        if self.telegram.require_proxy and self.telegram.proxy is None:
            raise ValueError(
                "telegram.require_proxy = true but telegram.proxy is not set: expected a proxy URL such as "
                "socks5://user:password@host:port (or require_proxy = false to allow direct connections)"
            )
        if source == "export" and self.emitter.export_path is None:
            raise ValueError(
                "emitter.export_path is required by the export source: expected a result.json or its folder"
            )
        if self.emitter.sink == "kafka" and not self.kafka.bootstrap_servers:
            raise ValueError("kafka.bootstrap_servers is required by the kafka sink: expected host:port")
        return self

    @property
    def source_kind(self) -> Literal["demo", "export", "telegram"]:
        """The source in effect once `auto` is resolved.

        Raises:
            ConfigError: `auto` with a Kafka sink but neither a Telegram account nor an export: demo data
                must never reach what may be a production topic by accident.
        """
        source = self._source_or_none()
        if source is None:
            missing = [f"telegram.{key}" for key in ("api_id", "api_hash") if getattr(self.telegram, key) is None]
            if self.telegram.session is None and self.telegram.session_file is None:
                missing.append("a session (telegram.session or telegram.session_file; `emitter login` makes one)")
            raise ConfigError(
                "emitter.source = auto with a Kafka sink needs a Telegram account or an export, never demo data: "
                f"missing {', '.join(missing)}; or set emitter.export_path, or emitter.source = demo "
                "(--source demo) to publish demo data on purpose"
            )
        return source

    def _source_or_none(self) -> Literal["demo", "export", "telegram"] | None:
        """`source_kind`, or None where `auto` must not guess (a Kafka sink and nothing but demo data)."""
        if self.emitter.source != "auto":
            return self.emitter.source
        if self.telegram.api_id is not None:
            return "telegram"
        if self.emitter.export_path is not None:
            return "export"
        return None if self.sink_kind == "kafka" else "demo"

    @property
    def sink_kind(self) -> Literal["kafka", "file"]:
        """The sink in effect once `auto` is resolved."""
        if self.emitter.sink != "auto":
            return self.emitter.sink
        return "kafka" if self.kafka.bootstrap_servers else "file"


_SECTIONS = dict(Settings.model_fields.items())


def read_ini(path: Path | None) -> dict[str, dict[str, str]]:
    """The INI file as nested dicts; unknown sections and keys fail with the key's name."""
    if path is None:
        return {}
    # tgdata's own README writes [Telegram] and puts comments after values: both are accepted.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {str(path)!r} does not exist: expected a readable INI file") from e
    except (OSError, configparser.Error, UnicodeDecodeError) as e:
        first_line = str(e).splitlines()[0]
        raise ConfigError(f"config file {str(path)!r} is not valid INI: {first_line}") from e
    out: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        name = section.lower()
        if name not in _SECTIONS:
            raise ConfigError(
                f"config file {str(path)!r}: unknown section [{section}]: expected one of {', '.join(_SECTIONS)}"
            )
        out[name] = {key: _unquote(value) for key, value in parser.items(section)}
    return out


def _unquote(value: str) -> str:
    """INI values written in quotes ("+1555…") mean the text inside."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _check_env_keys() -> None:
    """EMITTER_* variables that name no setting are typos: fail rather than ignore them."""
    for var in os.environ:
        if not var.upper().startswith(ENV_PREFIX) or var.upper() == "EMITTER_CONFIG":
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        model = _SECTIONS.get(section)
        annotation = model.annotation if model else None
        if annotation is None or key not in annotation.model_fields:  # type: ignore[union-attr]
            raise ConfigError(
                f"environment variable {var} names no setting: expected EMITTER_<SECTION>__<KEY>, "
                f"sections {', '.join(_SECTIONS)}"
            )


def _describe(error: Mapping[str, Any], secret_keys: set[str]) -> str:
    loc = ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown setting {loc}: expected one of the keys in the README's configuration reference"
    if not loc:
        return msg
    if loc in secret_keys or error["type"] == "value_error":
        return f"{loc}: {msg}"
    return f"{loc} = {error.get('input')!r}: expected {msg.removeprefix('Input should be ')}"


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Settings:
    """Read and validate the configuration.

    Args:
        config_file: the INI file; defaults to $EMITTER_CONFIG, then ./config.ini if it exists.
        overrides: values from flags or code, as ``{"section": {"key": value}}``; they win over everything.

    Raises:
        ConfigError: one line naming the bad key and what was expected.
    """
    if config_file is None:
        env_path = os.environ.get("EMITTER_CONFIG")
        if env_path:
            config_file = Path(env_path)
        elif Path("config.ini").is_file():
            config_file = Path("config.ini")
    _check_env_keys()
    token = _ini_path.set(config_file)
    try:
        init: dict[str, Any] = {k: dict(v) for k, v in (overrides or {}).items()}
        return Settings(**init)
    except ValidationError as e:
        secret_keys = {
            "telegram.api_hash",
            "telegram.session",
            "telegram.proxy",
            "kafka.sasl_password",
            "kafka.schema_registry_password",
            "media.secret_access_key",
        }
        raise ConfigError(_describe(e.errors()[0], secret_keys)) from None
    finally:
        _ini_path.reset(token)
