"""A fixed sample of encoded records, for Avro readers other than fastavro to check themselves against.

    python -m tests.avro_sample      # rewrites tests/data/avro-sample/ (after a schema change)

Writes `values.hex`: one Kafka record value per line, hex, exactly as the emitter sends it (single-object
encoding: `C3 01`, the schema's CRC-64-AVRO fingerprint, the Avro body), and `expected.jsonl`: the record each
value holds, one JSON object per line in the same order (timestamps as ISO 8601 UTC with milliseconds, as
`emitter tail` prints them; unions as plain values or null). The events are generated from a fixed seed, so the
files change only when the generator or the schema does; tests/unit/test_avro_sample.py checks both.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from emitter.codec import Encoder, to_avro, to_json_ready
from emitter.records import (
    Action,
    CommentOf,
    Entity,
    EventType,
    Forward,
    Group,
    GroupType,
    Media,
    MessageEvent,
    PeerKind,
    Reaction,
    Reply,
    Sender,
    Source,
    Topic,
)

SAMPLE_DIR: Final = Path(__file__).resolve().parent / "data" / "avro-sample"
VALUES_FILE: Final = SAMPLE_DIR / "values.hex"
EXPECTED_FILE: Final = SAMPLE_DIR / "expected.jsonl"
COUNT: Final = 200
SEED: Final = 17

_LONG_EDGES: Final = (0, 1, -1, 63, -64, 64, 8191, 8192, 2**31 - 1, -(2**31), 2**31, 2**53 + 1, 2**63 - 1, -(2**63))
_INT_EDGES: Final = (0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31))
_TEXTS: Final = (
    "",
    "hello",
    "Grüße aus Köln",
    "Привет, мир",
    "👍🏽 family 👨‍👩‍👧 flags 🇺🇦",
    "日本語のテキスト",
    'tab\tnew\nline "quoted" \\ back',
    "\u0000 nul and \u007f del",
    "مرحبا بالعالم",
)
_MEDIA_TYPES: Final = ("photo", "document", "geo", "poll", "contact", "webpage", "dice", "unsupported")


def _long(rng: random.Random) -> int:
    return rng.choice(_LONG_EDGES) if rng.random() < 0.3 else rng.randint(-(2**40), 2**40)


def _int(rng: random.Random) -> int:
    return rng.choice(_INT_EDGES) if rng.random() < 0.3 else rng.randint(0, 100_000)


T = TypeVar("T")


def _maybe(rng: random.Random, value: T) -> T | None:
    return value if rng.random() < 0.6 else None


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_TEXTS) for _ in range(rng.randint(0, 3)))


def _date(rng: random.Random) -> datetime:
    # 1901 to 2100, at millisecond precision (what timestamp-millis keeps), pre-1970 ones included.
    millis = rng.randint(-(2**31) * 1000, 4_102_444_800_000)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)


def _media(rng: random.Random) -> Media:
    kind = rng.choice(_MEDIA_TYPES)
    return Media(
        type=kind,
        id=_maybe(rng, _long(rng)),
        mime_type=_maybe(rng, rng.choice(("video/mp4", "image/jpeg", "application/pdf"))),
        size=_maybe(rng, rng.choice((0, 2**31 + 12_345, 3 * 2**31, rng.randint(1, 10**9)))),
        file_name=_maybe(rng, rng.choice(("a.mp4", "résumé.pdf", "фото.jpg"))),
        width=_maybe(rng, _int(rng)),
        height=_maybe(rng, _int(rng)),
        duration=_maybe(rng, rng.choice((0.0, 1.5, -0.25, 1e-300, 12345.678))),
        title=_maybe(rng, _text(rng)),
        performer=_maybe(rng, _text(rng)),
        url=_maybe(rng, "https://example.org/x?y=1"),
        description=_maybe(rng, _text(rng)),
        latitude=rng.uniform(-90, 90) if kind == "geo" else None,
        longitude=rng.uniform(-180, 180) if kind == "geo" else None,
        phone_number="+1 555 0100" if kind == "contact" else None,
        first_name="Ada" if kind == "contact" else None,
        last_name=_maybe(rng, "Lovelace") if kind == "contact" else None,
        emoji="🎲" if kind == "dice" else None,
        poll_question="Which?" if kind == "poll" else None,
        poll_answers=tuple(rng.choice(_TEXTS) for _ in range(rng.randint(0, 4))) if kind == "poll" else (),
        poll_closed=rng.choice((True, False, None)) if kind == "poll" else None,
        poll_total_voters=_maybe(rng, _int(rng)) if kind == "poll" else None,
        storage_uri=_maybe(rng, "s3://media/media/" + "ab" * 32),
        sha256=_maybe(rng, "ab" * 32),
        stored_size=_maybe(rng, rng.choice((0, 2**31 + 12_345, rng.randint(1, 10**9)))),
    )


def _event(rng: random.Random, n: int) -> MessageEvent:
    group = Group(
        id=rng.choice((-1001234567890, -4001234, 777000, -(10**12 + 2**40))),
        title=_maybe(rng, rng.choice(_TEXTS)),
        username=_maybe(rng, rng.choice(("news", "ünïcode", ""))),
        type=rng.choice(list(GroupType)),
    )
    sender = Sender(
        id=_long(rng),
        kind=rng.choice(list(PeerKind)),
        name=_maybe(rng, rng.choice(_TEXTS)),
        username=_maybe(rng, "ada"),
        is_bot=rng.choice((True, False, None)),
    )
    kind = rng.choice(list(EventType))
    return MessageEvent(
        event_type=kind,
        group=group,
        message_id=n if rng.random() < 0.5 else _long(rng),
        source=rng.choice(list(Source)),
        ingest_time=_date(rng),
        date=None if kind is EventType.DELETE else _maybe(rng, _date(rng)),
        edit_date=_date(rng) if kind is EventType.EDIT else None,
        sender=_maybe(rng, sender),
        text="long " * 1700 if n == COUNT // 2 else _text(rng),  # one length of three varint bytes
        entities=tuple(
            Entity(
                type=rng.choice(("bold", "text_url", "mention_name", "pre", "custom_emoji")),
                offset=_int(rng),
                length=_int(rng),
                url=_maybe(rng, "https://x.y"),
                user_id=_maybe(rng, _long(rng)),
                language=_maybe(rng, "python"),
                custom_emoji_id=_maybe(rng, _long(rng)),
            )
            for _ in range(rng.choice((0, 0, 1, 3)))
        ),
        reply=_maybe(
            rng,
            Reply(
                to_message_id=_maybe(rng, _long(rng)),
                to_top_id=_maybe(rng, _long(rng)),
                forum_topic=rng.random() < 0.5,
                to_peer_id=_maybe(rng, _long(rng)),
                quote_text=_maybe(rng, rng.choice(_TEXTS)),
            ),
        ),
        forward=_maybe(
            rng,
            Forward(
                from_id=_maybe(rng, _long(rng)),
                from_name=_maybe(rng, rng.choice(_TEXTS)),
                date=_maybe(rng, _date(rng)),
                channel_post=_maybe(rng, _long(rng)),
                post_author=_maybe(rng, "Editor"),
                saved_from_peer=_maybe(rng, _long(rng)),
                saved_from_msg_id=_maybe(rng, _long(rng)),
            ),
        ),
        media=_maybe(rng, _media(rng)),
        grouped_id=_maybe(rng, _long(rng)),
        views=_maybe(rng, _int(rng)),
        forwards=_maybe(rng, _int(rng)),
        replies=_maybe(rng, _int(rng)),
        reactions=tuple(Reaction(rng.choice(("👍", "❤️", "🔥", "x")), _int(rng)) for _ in range(rng.choice((0, 1, 3)))),
        post_author=_maybe(rng, "Editor"),
        via_bot_id=_maybe(rng, _long(rng)),
        pinned=rng.random() < 0.2,
        is_post=rng.random() < 0.3,
        action=_maybe(
            rng,
            Action(
                type=rng.choice(("chat_add_user", "pin_message", "chat_migrate_to", "future_thing")),
                actor_id=_maybe(rng, _long(rng)),
                user_ids=tuple(_long(rng) for _ in range(rng.choice((0, 1, 2)))),
                title=_maybe(rng, rng.choice(_TEXTS)),
                peer_id=_maybe(rng, _long(rng)),
                message_id=_maybe(rng, _long(rng)),
                text=_maybe(rng, "level=3"),
            ),
        )
        if rng.random() < 0.2
        else None,
        extra={rng.choice(("k", "ключ", "reply_class")): rng.choice(_TEXTS) for _ in range(rng.choice((0, 0, 2)))},
        truncated=rng.random() < 0.05,
        topic=_maybe(rng, Topic(id=rng.choice((1, _long(rng))), title=_maybe(rng, rng.choice(_TEXTS)))),
        comment_of=_maybe(rng, CommentOf(channel_id=-(10**12 + rng.randint(1, 2**40)), post_id=_long(rng))),
    )


def sample_events() -> list[MessageEvent]:
    """The sample's events, the same on every call."""
    rng = random.Random(SEED)
    return [_event(rng, n) for n in range(1, COUNT + 1)]


def render() -> tuple[str, str]:
    """The contents of `values.hex` and `expected.jsonl`."""
    encoder = Encoder()
    events = sample_events()
    values = "".join(encoder.encode(e).hex() + "\n" for e in events)
    expected = "".join(
        json.dumps(to_json_ready(to_avro(e)), ensure_ascii=False, separators=(",", ":")) + "\n" for e in events
    )
    return values, expected


def main() -> None:
    """Rewrite the sample files."""
    values, expected = render()
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    VALUES_FILE.write_text(values, encoding="utf-8")
    EXPECTED_FILE.write_text(expected, encoding="utf-8")
    print(f"wrote {COUNT} records to {VALUES_FILE} and {EXPECTED_FILE}")


if __name__ == "__main__":
    main()
