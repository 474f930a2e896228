"""Scenario 7: Avro encoding alone: fastavro's generic writer against the writer generated for our schema.

The events are scenario 1's: the fake world's supergroup messages (texts of 3 to 40 words), mapped by
`map_message` as in a backfill, with the sender entity Telethon caches on its messages. Each round encodes all of
them once with each encoder, in the same process, alternating; CPU time of this thread, so the other processes
of a shared machine count less. The two must agree byte for byte (checked on every event before timing).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import fastavro

from bench.common import Context, log, median, message_text
from bench.report import Row, verdict
from emitter.codec import Encoder, to_avro
from emitter.records import Group, MessageEvent, Source, utc_now
from emitter.telegram_mapping import group_from_entity, map_message
from tests.faketelegram import FakeTelegram

NAME = "7 encode"
TARGET_US: Final = 5.0
MIN_ROUNDS: Final = 5


def scenario(ctx: Context) -> list[Row]:
    """µs per record for fastavro and for the specialised writer, median of rounds, and their ratio."""
    messages, group = typical_messages(ctx.sizes.encode)
    events = [map_message(m, group, source=Source.BACKFILL, ingest_time=utc_now()) for m in messages]
    encoder = Encoder()
    if not encoder.specialised:
        raise RuntimeError("the message schema got no specialised writer (see the log)")
    mismatched = sum(1 for e in events if encoder.encode(e) != fastavro_encode(encoder, e))
    if mismatched or encoder.fallbacks:
        raise RuntimeError(f"{mismatched} events encoded differently, {encoder.fallbacks} declined")
    rounds = max(ctx.runs, MIN_ROUNDS)
    generic: list[float] = []
    special: list[float] = []
    mapping_only: list[float] = []
    mapping: list[float] = []
    ingest = utc_now()
    for i in range(rounds):
        log(f"encode: round {i + 1}/{rounds}, {len(events):,} events each way")
        generic.append(_us_per_record(lambda e: fastavro_encode(encoder, e), events))
        special.append(_us_per_record(encoder.encode, events))
        mapping_only.append(_us_per_record(to_avro, events))
        mapping.append(
            _us_per_record(lambda m: map_message(m, group, source=Source.BACKFILL, ingest_time=ingest), messages)
        )
    ratios = [s / g for s, g in zip(special, generic, strict=True)]
    ctx.note(
        NAME,
        f"{len(events):,} events of scenario 1's supergroup (map_message of the fake's messages, with the sender "
        f"entity cached on them as on Telethon's custom Message); {rounds} rounds, each encoding every event with "
        "fastavro (`to_avro` + `schemaless_writer`, what Encoder did before) and with `Encoder.encode` (the "
        "writer generated from the schema), CPU time of the thread. Both write the same bytes, header "
        "included; the ratio is computed per round. map_message is timed over the same messages, for scale.",
    )
    return [
        Row(NAME, "fastavro: to_avro + schemaless_writer, per record", f"{median(generic):.1f} µs", verdict="info"),
        Row(NAME, "of which to_avro (MessageEvent -> dict) alone", f"{median(mapping_only):.1f} µs", verdict="info"),
        Row(
            NAME,
            "specialised writer (emitter.avro_writer), per record",
            f"{median(special):.1f} µs",
            f"≤ {TARGET_US:g} µs",
            median(special) / TARGET_US,
            verdict(median(special) <= TARGET_US),
        ),
        Row(NAME, "specialised ÷ fastavro (same round)", f"{median(ratios):.2f}", "÷ fastavro", median(ratios)),
        Row(NAME, "for scale: map_message (TL message -> MessageEvent), per record", f"{median(mapping):.1f} µs"),
    ]


def typical_messages(n: int) -> tuple[list[Any], Group]:
    """`n` messages of scenario 1's world as a backfill gets them, and their group."""
    fake = FakeTelegram(seed=7)
    channel = fake.add_channel("Bench 0", username="enc_0", megagroup=True)
    fake.post_many(channel, n, text=message_text)
    messages = fake.messages(channel)
    for message in messages:
        message._sender = fake.default_user  # what Telethon's custom Message carries from the page's users
    return messages, group_from_entity(channel)


def fastavro_encode(encoder: Encoder, event: MessageEvent) -> bytes:
    """The framed value as fastavro writes it (Encoder.encode before the specialised writer)."""
    buf = io.BytesIO()
    buf.write(encoder.header)
    fastavro.schemaless_writer(buf, encoder.schema.parsed, to_avro(event))
    return buf.getvalue()


def _us_per_record(encode: Callable[[MessageEvent], Any], events: Sequence[MessageEvent]) -> float:
    started = time.thread_time()
    for event in events:
        encode(event)
    return (time.thread_time() - started) / len(events) * 1e6
