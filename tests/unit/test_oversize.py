"""Oversized records are cut to fit, deterministically, never failing the batch."""

from __future__ import annotations

from emitter.codec import Encoder, decode
from emitter.oversize import fit
from emitter.records import Entity
from tests.factories import event


def test_small_records_pass_untouched() -> None:
    """A record under the limit is returned as it is."""
    e = event(1, text="hello")
    cut, value = fit(e, Encoder().encode, 10_000)
    assert cut is e
    assert value == Encoder().encode(e)


def test_huge_text_and_thousands_of_entities_are_cut_and_flagged() -> None:
    """A 2 MB text with 5,000 entities fits the limit, keeps only entities inside the text, and is flagged."""
    text = "😀" * 500_000 + "x" * 1_000_000
    entities = tuple(Entity(type="bold", offset=i * 400, length=2) for i in range(5_000))
    e = event(2, text=text, entities=entities, extra={"k": "v" * 10_000})
    cut, value = fit(e, Encoder().encode, 100_000)
    assert len(value) <= 100_000
    record = decode(value)
    assert record["truncated"] is True
    assert int(record["extra"]["original_bytes"]) > 2_000_000
    assert text.startswith(record["text"])
    limit = len(record["text"].encode("utf-16-le")) // 2
    assert all(en["offset"] + en["length"] <= limit for en in record["entities"])
    assert cut.message_id == 2
