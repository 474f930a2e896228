"""Small TL helpers shared by the fake: request names, result serialisation, date handling.

Nothing here talks to Telethon's client layers; it only uses the generated TL classes and the binary
reader/writer conventions that the real MTProto sender relies on.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

from telethon.tl import TLObject, functions

_VECTOR = 0x1CB5C415
_BOOL_TRUE = 0x997275B5
_BOOL_FALSE = 0xBC799737

# Requests that only carry another request. The fake answers the innermost one, as Telegram does.
WRAPPERS: tuple[type[Any], ...] = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
    functions.InvokeAfterMsgsRequest,
    functions.InvokeWithTakeoutRequest,
    functions.InvokeWithMessagesRangeRequest,
)

RequestSpec = type[Any] | str | None
"""Which requests a rule or a counter means: a TL request class, its key ('messages.GetHistoryRequest'),
its bare class name ('GetHistoryRequest', which matches every namespace), or None for any request. The
'Request' suffix may be left out ('messages.GetHistory')."""


def request_key(obj: object) -> str:
    """Namespace-qualified class name: 'messages.GetHistoryRequest', or 'PingRequest' for root functions.

    Qualified because several namespaces share class names (channels.GetMessagesRequest and
    messages.GetMessagesRequest are different calls with different answers).
    """
    cls = obj if isinstance(obj, type) else type(obj)
    namespace = cls.__module__.rsplit(".", 1)[-1]
    return cls.__name__ if namespace == "functions" else f"{namespace}.{cls.__name__}"


def spec_matches(spec: RequestSpec, key: str) -> bool:
    """Whether a request with `key` is meant by `spec` (see `RequestSpec`)."""
    if spec is None:
        return True
    if isinstance(spec, str):
        if not spec.endswith("Request"):
            spec += "Request"
        return key == spec or key.rsplit(".", 1)[-1] == spec
    return request_key(spec) == key


def serialize_result(result: object) -> bytes:
    """Bytes of a result exactly as Telegram puts them in an rpc_result body.

    `bytes(tlobject)` covers objects; results typed Vector<T> or Bool need the boxed framing that the
    request's own `read_result` expects, which plain `bytes()` cannot produce for a list or a bool.
    """
    if isinstance(result, bool):
        return struct.pack("<I", _BOOL_TRUE if result else _BOOL_FALSE)
    if isinstance(result, list):
        return struct.pack("<Ii", _VECTOR, len(result)) + b"".join(serialize_result(x) for x in result)
    if isinstance(result, TLObject):
        return bytes(result)
    raise TypeError(f"cannot serialise a {type(result).__name__} result")


def utc_now() -> datetime:
    """Current time as Telegram represents it: UTC, whole seconds (TL dates are 32-bit Unix times)."""
    return datetime.now(UTC).replace(microsecond=0)


def date_or_none(value: datetime | None) -> datetime | None:
    """A TL date field, or None when it was left empty.

    An omitted date serialises as 0, so after a trip through bytes "no offset_date" comes back as the
    Unix epoch; both spellings mean "not set".
    """
    if value is None or value.timestamp() == 0:
        return None
    return value
