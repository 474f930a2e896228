"""The record types: `MessageEvent`'s faster constructor behaves as the dataclass's own."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from emitter.records import EventType, Group, MessageEvent, Source, _slot_init

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GROUP = Group(id=-1001, title="g")


@dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()
    d: dict[str, str] = field(default_factory=dict)


@_slot_init
@dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()
    d: dict[str, str] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((), {"a": 2, "c": (3,)}), ((4,), {"d": {"k": "v"}, "b": "y"})],
)
def test_slot_init_sets_what_the_dataclass_init_sets(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    """Positional and keyword arguments, defaults and factories give the fields the dataclass's init gives."""
    assert dataclasses.astuple(_Fast(*args, **kwargs)) == dataclasses.astuple(_Plain(*args, **kwargs))  # type: ignore[arg-type]


def test_slot_init_refuses_what_the_dataclass_init_refuses() -> None:
    """A missing required field or an unknown keyword is a TypeError, as before."""
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, e=2)  # type: ignore[call-arg]


def test_message_event_defaults_are_fresh_and_the_event_stays_frozen() -> None:
    """Each event gets its own `extra` dict and the field defaults; assigning a field still raises."""
    one = MessageEvent(EventType.NEW, GROUP, 1, Source.EXPORT, T0)
    two = MessageEvent(event_type=EventType.NEW, group=GROUP, message_id=2, source=Source.EXPORT, ingest_time=T0)
    assert one.extra == {} and one.extra is not two.extra
    assert (one.text, one.entities, one.media, one.pinned, one.pts) == ("", (), None, False, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.text = "changed"  # type: ignore[misc]


def test_message_event_replace_compare_and_pickle() -> None:
    """`replace`, equality and pickling work on events built by the faster constructor."""
    event = MessageEvent(EventType.NEW, GROUP, 1, Source.EXPORT, T0, text="hi", extra={"k": "v"})
    edited = dataclasses.replace(event, event_type=EventType.EDIT)
    assert edited.event_type is EventType.EDIT and edited.text == "hi" and edited.extra == {"k": "v"}
    assert pickle.loads(pickle.dumps(event)) == event  # noqa: S301 - our own bytes, just written
    assert edited != event
