"""Records too large for Kafka: cut them to fit, deterministically, instead of failing the batch forever.

A message with a huge text or thousands of entities can exceed the broker's `max.message.bytes`. Retrying
such a batch would stall the group for good, so the sink applies a policy: truncate the record (and flag
it), or send it to a dead-letter topic. Cutting is pure and always terminates: the text halves until the
record fits, and what no longer fits (entities past the text, extra details, poll answers) is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from emitter.records import MessageEvent


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut(event: MessageEvent, chars: int, original_bytes: int) -> MessageEvent:
    text = event.text[:chars]
    limit = _utf16_len(text)
    entities = tuple(e for e in event.entities if e.offset + e.length <= limit)
    extra = {"original_bytes": str(original_bytes)} | (
        {k: v[:200] for k, v in event.extra.items()} if chars > 0 else {}
    )
    media = event.media
    if media is not None and chars == 0:
        media = dataclasses.replace(media, poll_answers=media.poll_answers[:10], description=None)
    return dataclasses.replace(event, text=text, entities=entities, extra=extra, media=media, truncated=True)


def fit(event: MessageEvent, encode: Callable[[MessageEvent], bytes], max_bytes: int) -> tuple[MessageEvent, bytes]:
    """The event (cut if needed) and its encoding, at most `max_bytes` long when at all possible."""
    value = encode(event)
    if len(value) <= max_bytes:
        return event, value
    original = len(value)
    chars = len(event.text)
    while True:
        chars //= 2
        candidate = _cut(event, chars, original)
        if len(candidate.entities) > 1000:
            candidate = dataclasses.replace(candidate, entities=candidate.entities[:1000])
        value = encode(candidate)
        if len(value) <= max_bytes or chars == 0:
            return candidate, value
