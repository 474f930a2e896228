"""telegram-emitter: Telegram groups and channels as an exactly-once stream of Avro events in Kafka."""

from emitter.codec import decode
from emitter.cursor import GroupCursor
from emitter.protocols import Batch, MessageInfo, MessageSource, MessageTrackerInterface, Page, Sink
from emitter.records import EventType, Group, GroupType, MessageEvent, Source

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # TgData pulls in Telethon and the library layer: import it only when asked for.
    if name == "TgData":
        from emitter.tgdata import TgData  # noqa: PLC0415

        return TgData
    raise AttributeError(f"module 'emitter' has no attribute {name!r}")


__all__ = [
    "Batch",
    "EventType",
    "Group",
    "GroupCursor",
    "GroupType",
    "MessageEvent",
    "MessageInfo",
    "MessageSource",
    "MessageTrackerInterface",
    "Page",
    "Sink",
    "Source",
    "TgData",
    "__version__",
    "decode",
]
