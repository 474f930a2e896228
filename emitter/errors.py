"""The emitter's error hierarchy: each class says how the caller should react."""

from __future__ import annotations


class EmitterError(Exception):
    """Base class of every error the emitter raises on purpose."""


class ConfigError(EmitterError):
    """A user mistake in configuration or on the command line: one line, exit code 2, no traceback."""


class FatalError(EmitterError):
    """The emitter cannot go on safely (fenced, misconfigured topic, lost credentials): stop, exit 1."""


class FencedError(FatalError):
    """Another instance with the same transactional identity took over; writing on would duplicate."""


class CursorTopicError(FatalError):
    """The cursor topic exists with a configuration that would lose cursors (not compacted)."""


class RetriableError(EmitterError):
    """A transient failure (broker away, timeout): back off and retry from the last committed cursor."""


class SourceError(EmitterError):
    """A source failed for one group (lost access, bad export): that group stops, the others go on."""

    def __init__(self, group_id: int, reason: str) -> None:
        super().__init__(f"group {group_id}: {reason}")
        self.group_id = group_id
        self.reason = reason
