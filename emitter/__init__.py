"""telegram-emitter: Telegram groups and channels as an exactly-once stream of Avro events in Kafka."""

from emitter.codec import decode
from emitter.cursor import GroupCursor
from emitter.protocols import Batch, MessageInfo, MessageSource, MessageTrackerInterface, Page, Sink
from emitter.records import EventType, Group, GroupType, MessageEvent, Source

__version__ = "0.1.0"

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
    "__version__",
    "decode",
]
