"""The history reader's own primitives read exactly what Telethon's `BinaryReader` reads.

A getHistory answer is parsed by Telethon's generated `from_reader`s over the emitter's reader, whose
`read_int`, `read_long`, `tgread_bytes`, `tgread_date` and `tgread_object` are its own (faster) versions:
any difference would change a field of a published record, so every answer is compared field by field with
Telethon's reader over the same bytes.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telethon.extensions import BinaryReader
from telethon.tl import types as tl
from telethon.tl.types import messages as tl_messages

from emitter.telegram_history import _read_raw_messages

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

texts = st.text(max_size=600) | st.sampled_from(["", "x" * 253, "y" * 254, "z" * 255, "é" * 127, "\U0001f600" * 70])
peer_ids = st.integers(min_value=1, max_value=2**40)
peers = st.one_of(peer_ids.map(tl.PeerUser), peer_ids.map(tl.PeerChat), peer_ids.map(tl.PeerChannel))


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """A generated TL Message with the fields a history page's messages carry, in any combination."""
    entities = draw(
        st.lists(
            st.builds(tl.MessageEntityBold, offset=st.integers(0, 2**31 - 1), length=st.integers(0, 2**31 - 1)),
            max_size=3,
        )
    )
    counters = draw(st.just({}) | st.integers(0, 2**31 - 1).map(lambda n: {"views": n, "forwards": n // 2}))
    return tl.Message(
        **counters,
        id=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        peer_id=draw(peers),
        date=T0 + timedelta(seconds=draw(st.integers(-(2**31) + 2**30, 2**30))),
        message=draw(texts),
        from_id=draw(st.none() | peers),
        entities=entities or None,
        grouped_id=draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
        via_bot_id=draw(st.none() | st.integers(0, 2**63 - 1)),
        post_author=draw(st.none() | texts),
        pinned=draw(st.booleans()),
        edit_date=draw(st.none() | st.just(T0)),
    )


def answer(page: list[Any]) -> Any:
    users = [tl.User(id=1000, first_name="Ann", username="ann")]
    chats = [tl.Channel(id=77, title="Walk", photo=tl.ChatPhotoEmpty(), date=T0, megagroup=True)]
    return tl_messages.ChannelMessages(pts=9, count=len(page), messages=page, topics=[], chats=chats, users=users)


def telethons(data: bytes) -> Any:
    return BinaryReader(data).tgread_object()


@settings(max_examples=200, deadline=None)
@given(st.lists(messages(), max_size=6))
def test_an_answer_reads_as_telethons_reader_reads_it(page: list[Any]) -> None:
    data = bytes(answer(page))
    assert _read_raw_messages(BinaryReader(data)).to_dict() == telethons(data).to_dict()


def test_equal_peers_of_one_answer_are_one_object_and_different_ones_are_not() -> None:
    """Peers are shared within an answer (a constructor and an id: equal bytes, equal peers)."""
    page = [
        tl.Message(id=i, peer_id=tl.PeerChannel(77), date=T0, message="m", from_id=tl.PeerUser(1000 + i % 2))
        for i in range(1, 5)
    ]
    read = _read_raw_messages(BinaryReader(bytes(answer(page))))
    assert len({id(m.peer_id) for m in read.messages}) == 1
    assert len({id(m.from_id) for m in read.messages}) == 2
    assert [m.from_id.user_id for m in read.messages] == [1001, 1000, 1001, 1000]
    # A user's id and a channel's id may be the same number: they stay different peers.
    same_number = [tl.Message(id=1, peer_id=tl.PeerChannel(5), date=T0, message="", from_id=tl.PeerUser(5))]
    one = _read_raw_messages(BinaryReader(bytes(answer(same_number)))).messages[0]
    assert type(one.peer_id).__name__ == "PeerChannel" and type(one.from_id).__name__ == "PeerUser"


@pytest.mark.parametrize("cut", [1, 3, 5, 40, 200])
def test_a_truncated_answer_fails_as_telethons_reader_fails(cut: int) -> None:
    """Data that ends early raises what Telethon's reader raises for it (its sender reports that as such)."""
    page = [tl.Message(id=1, peer_id=tl.PeerChannel(77), date=T0, message="x" * 300, from_id=tl.PeerUser(1000))]
    data = bytes(answer(page))[:-cut]
    with pytest.raises((struct.error, BufferError)) as theirs:
        telethons(data)
    with pytest.raises((struct.error, BufferError)) as ours:
        _read_raw_messages(BinaryReader(data))
    assert type(ours.value) is type(theirs.value)
