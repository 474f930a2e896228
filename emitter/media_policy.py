"""Which media bytes are worth storing: a pure decision from a record's media metadata and its group."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from emitter.records import Media
from emitter.settings import MediaSettings


class MediaDecision(StrEnum):
    """What happens to one record's media; everything but STORE keeps the metadata only."""

    STORE = "store"
    NO_MEDIA = "no_media"
    DISABLED = "disabled"
    TYPE_NOT_STORED = "type_not_stored"
    TOO_LARGE = "too_large"
    SIZE_UNKNOWN = "size_unknown"


@dataclass(frozen=True, slots=True)
class _Rule:
    types: frozenset[str]
    max_bytes: int


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """The `[media]` filter (types, max_bytes) with its per-group overrides, resolved once."""

    enabled: bool
    default: _Rule
    groups: dict[int, _Rule]

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> MediaPolicy:
        """The policy the settings describe; an override's unset keys keep the section's values."""
        default = _Rule(frozenset(settings.types), settings.max_bytes)
        groups = {
            group: _Rule(
                default.types if o.types is None else frozenset(o.types),
                default.max_bytes if o.max_bytes is None else o.max_bytes,
            )
            for group, o in settings.groups.items()
        }
        return cls(settings.enabled, default, groups)

    def decide(self, group_id: int, media: Media | None) -> MediaDecision:
        """Whether the bytes of `media`, posted in the group with marked id `group_id`, are stored.

        A file whose size the metadata does not carry is not stored: the byte budget and `max_bytes`
        could not bound it (Telegram gives a size for every downloadable document and photo size).
        """
        if media is None:
            return MediaDecision.NO_MEDIA
        if not self.enabled:
            return MediaDecision.DISABLED
        rule = self.groups.get(group_id, self.default)
        if media.type not in rule.types:
            return MediaDecision.TYPE_NOT_STORED
        if media.size is None:
            return MediaDecision.SIZE_UNKNOWN
        if media.size > rule.max_bytes:
            return MediaDecision.TOO_LARGE
        return MediaDecision.STORE
