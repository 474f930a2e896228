"""Avro binary writers specialised to one record schema: Python source generated from the schema, compiled once.

fastavro's `schemaless_writer` is generic: it parses the schema again on every call and walks it field by field
through dict lookups, so most of its ~20 µs per `MessageEvent` is interpretation, not encoding. This module reads
the parsed schema once and writes the straight-line code that schema implies (one attribute read, one type check
and one append per field, nested records and unions inlined), so a record costs a few microseconds. Nothing
here names a field: a field added to `schemas/*.avsc` (and to its class in `emitter.records`) is picked up at
the next import.

The writer reads the record's Python object directly (`event.group.id`, not `to_avro(event)["group"]["id"]`):
each Avro record is a class whose attributes carry the field names, enums are `str` values (`StrEnum`s),
arrays are tuples or lists, maps are dicts of `str`, timestamps are aware `datetime`s.

Byte identity with fastavro is the contract; the property test in tests/unit/test_avro_writer.py checks it.
So the writer only writes what it knows fastavro would write the same way, and declines the rest:

- Schemas it is not built for raise `UnsupportedSchema` from `build_writer` (the caller then uses fastavro):
  unions other than a null and one other type, recursive named types, `fixed` and `bytes` with a logical
  type, logical types other than `timestamp-millis` / `timestamp-micros` on `long`, and records whose class
  is unknown or lacks an attribute for one of the fields.
- Values it is not built for raise `UnsupportedValue` from the writer (the caller then gives the record to
  fastavro, which writes it or raises its own error): anything not of the exact Python type expected (bool
  for an int, int for a double, str subclasses other than the schema's enum members), ints outside the
  field's range, naive datetimes, strings that do not encode as UTF-8, map keys that are not `str`.
"""

from __future__ import annotations

import dataclasses
import keyword
import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["RecordWriter", "UnsupportedSchema", "UnsupportedValue", "build_writer"]

_SMALL: Final = 1 << 14
"""Zig-zag values below this (two varint bytes) come from a table instead of being computed."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED: Final = frozenset({"record", "error", "enum", "fixed"})
_TIME_UNITS: Final = {"timestamp-millis": timedelta(milliseconds=1), "timestamp-micros": timedelta(microseconds=1)}
"""Supported logical types on `long`, and their unit.

fastavro computes `(days * 86400 + seconds) * 1000 + int(microseconds / 1000)` of `value - epoch`; a timedelta's
microseconds are never negative, so that is the floor division of the timedelta by a millisecond, done in C.
"""


class UnsupportedSchema(ValueError):
    """The schema uses something the specialised writer was not built for; use fastavro for it."""


class UnsupportedValue(ValueError):
    """A value outside what the specialised writer handles; give the record to fastavro instead."""


def _varint(z: int) -> bytes:
    """The varint bytes of a non-negative zig-zag value."""
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_TABLE: Final = tuple(_varint(z) for z in range(_SMALL))
"""The varint of every value below 2**14 (one or two bytes)."""
_CHUNK: Final = tuple(bytes(((z & 0x7F) | 0x80, (z >> 7) | 0x80)) for z in range(_SMALL))
"""14 bits of a longer varint: both 7-bit groups with their continuation bit set."""


RecordWriter = Callable[[bytearray, Any], None]
"""Appends the Avro binary body of one record object to the buffer; raises `UnsupportedValue`."""


@dataclasses.dataclass(slots=True)
class _Code:
    """The generated function under construction."""

    lines: list[str] = dataclasses.field(default_factory=list)
    consts: dict[str, object] = dataclasses.field(default_factory=dict)
    counter: int = 0

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def const(self, value: object, stem: str = "_k") -> str:
        for name, known in self.consts.items():
            if known is value:
                return name
        name = self.var(stem)
        self.consts[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


class _Generator:
    """Turns one parsed schema into source code; `types` maps Avro short names to the Python classes."""

    def __init__(self, types: Mapping[str, type]) -> None:
        self.types = types
        self.named: dict[str, Any] = {}
        self.stack: list[str] = []
        self.code = _Code()

    def function(self, schema: Any) -> str:
        self.code.emit(0, "def write(out, v):")
        self.code.emit(1, "try:")
        self.value(schema, "v", 2)
        self.code.emit(1, "except _Unsupported:")
        self.code.emit(2, "raise")
        self.code.emit(1, "except Exception as e:")
        self.code.emit(2, "raise _Unsupported(f'{type(e).__name__}: {e}') from e")
        return "\n".join(self.code.lines) + "\n"

    def value(self, schema: Any, x: str, d: int) -> None:
        """Code appending the encoding of the value in local `x` to `out`, at indentation `d`."""
        if isinstance(schema, list):
            self.union(schema, x, d)
            return
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                self.primitive(schema, None, x, d)
                return
            if schema not in self.named:
                raise UnsupportedSchema(f"unknown type {schema!r}")
            schema = self.named[schema]
        kind = schema.get("type")
        if isinstance(kind, (list, dict)):
            self.value(kind, x, d)  # {"type": {...}} or {"type": [...]}
            return
        if kind in _PRIMITIVES:
            self.primitive(kind, schema.get("logicalType"), x, d)
        elif kind in ("record", "error"):
            self.record(schema, x, d)
        elif kind == "enum":
            self.enum(schema, x, d)
        elif kind == "fixed":
            self.fixed(schema, x, d)
        elif kind == "array":
            self.array(schema, x, d)
        elif kind == "map":
            self.map(schema, x, d)
        else:
            raise UnsupportedSchema(f"unknown type {kind!r}")

    def unsupported(self, d: int, what: str) -> None:
        self.code.emit(d, f"raise _Unsupported({what!r})")

    def primitive(self, kind: str, logical: object, x: str, d: int) -> None:
        c = self.code
        if logical is not None:
            if kind != "long" or logical not in _TIME_UNITS:
                raise UnsupportedSchema(f"logical type {logical!r} on {kind}")
            c.emit(d, f"if type({x}) is not _datetime or {x}.tzinfo is None:")
            self.unsupported(d + 1, f"{logical} wants an aware datetime")
            c.emit(d, f"{x} = ({x} - _EPOCH) // {c.const(_TIME_UNITS[logical], '_unit')}")
            self.integer(x, d, 64)
        elif kind == "null":
            c.emit(d, f"if {x} is not None:")
            self.unsupported(d + 1, "null wants None")
        elif kind == "boolean":
            c.emit(d, f"if {x} is True:")
            c.emit(d + 1, "out += b'\\x01'")
            c.emit(d, f"elif {x} is False:")
            c.emit(d + 1, "out += b'\\x00'")
            c.emit(d, "else:")
            self.unsupported(d + 1, "boolean wants a bool")
        elif kind in ("int", "long"):
            c.emit(d, f"if type({x}) is not int:")
            self.unsupported(d + 1, f"{kind} wants an int")
            self.integer(x, d, 32 if kind == "int" else 64)
        elif kind in ("float", "double"):
            c.emit(d, f"if type({x}) is not float:")
            self.unsupported(d + 1, f"{kind} wants a float")
            c.emit(d, f"out += {c.const(struct.Struct('<f' if kind == 'float' else '<d').pack, '_pack')}({x})")
        elif kind == "string":
            c.emit(d, f"if type({x}) is not str:")
            self.unsupported(d + 1, "string wants a str")
            c.emit(d, f"{x} = {x}.encode()")
            self.length(f"len({x})", d)
            c.emit(d, f"out += {x}")
        else:  # bytes
            c.emit(d, f"if type({x}) is not bytes:")
            self.unsupported(d + 1, "bytes wants bytes")
            self.length(f"len({x})", d)
            c.emit(d, f"out += {x}")

    def integer(self, x: str, d: int, bits: int) -> None:
        """Zig-zag varint of the int in `x`; a value outside the signed `bits` range is declined."""
        c = self.code
        z = c.var("z")
        # For any int, the 64-bit zig-zag value is below 2**bits exactly when the int fits in `bits` bits.
        c.emit(d, f"{z} = ({x} << 1) ^ ({x} >> 63)")
        c.emit(d, f"if {z} < {_SMALL}:")
        c.emit(d + 1, f"out += _TABLE[{z}]")
        # Ids and timestamps take 3 to 6 bytes: whole 14-bit chunks from a table rather than a loop.
        c.emit(d, f"elif {z} < {1 << 28}:")
        c.emit(d + 1, f"out += _CHUNK[{z} & {_SMALL - 1}]")
        c.emit(d + 1, f"out += _TABLE[{z} >> 14]")
        if bits > 42:
            c.emit(d, f"elif {z} < {1 << 42}:")
            c.emit(d + 1, f"out += _CHUNK[{z} & {_SMALL - 1}]")
            c.emit(d + 1, f"out += _CHUNK[{z} >> 14 & {_SMALL - 1}]")
            c.emit(d + 1, f"out += _TABLE[{z} >> 28]")
        c.emit(d, f"elif {z} < {1 << bits}:")
        c.emit(d + 1, f"out += _varint({z})")
        c.emit(d, "else:")
        self.unsupported(d + 1, f"int outside {bits} bits")

    def length(self, n: str, d: int) -> None:
        """The varint of a count or byte length (never negative)."""
        c = self.code
        z = c.var("z")
        c.emit(d, f"{z} = {n} << 1")
        c.emit(d, f"out += _TABLE[{z}] if {z} < {_SMALL} else _varint({z})")

    def union(self, branches: list[Any], x: str, d: int) -> None:
        kinds = ["null" if b == "null" or (isinstance(b, dict) and b.get("type") == "null") else b for b in branches]
        if len(branches) == 1:
            self.code.emit(d, "out += b'\\x00'")
            self.value(branches[0], x, d)
            return
        if len(branches) != 2 or kinds.count("null") != 1:
            raise UnsupportedSchema(f"union {branches!r}: only a null and one other type")
        null_index = kinds.index("null")
        other = branches[1 - null_index]
        c = self.code
        c.emit(d, f"if {x} is None:")
        c.emit(d + 1, f"out += {_varint(null_index << 1)!r}")
        c.emit(d, "else:")
        c.emit(d + 1, f"out += {_varint((1 - null_index) << 1)!r}")
        # Every branch check below is at least as strict as fastavro's validation, which picks the branch.
        self.value(other, x, d + 1)

    def register(self, schema: Mapping[str, Any]) -> str:
        name = schema["name"]
        full = f"{schema['namespace']}.{name}" if schema.get("namespace") and "." not in name else name
        self.named[full] = schema
        return full

    def record(self, schema: Mapping[str, Any], x: str, d: int) -> None:
        full = self.register(schema)
        if full in self.stack:
            raise UnsupportedSchema(f"recursive record {full}")
        short = full.rsplit(".", 1)[-1]
        cls = self.types.get(short)
        if cls is None:
            raise UnsupportedSchema(f"no Python class for record {full}")
        attributes = _attributes(cls)
        self.stack.append(full)
        for field in schema["fields"]:
            name = field["name"]
            if not name.isidentifier() or keyword.iskeyword(name) or name not in attributes:
                raise UnsupportedSchema(f"{cls.__name__} has no attribute for field {full}.{name}")
            y = self.code.var("x")
            self.code.emit(d, f"{y} = {x}.{name}")
            self.value(field["type"], y, d)
        self.stack.pop()

    def enum(self, schema: Mapping[str, Any], x: str, d: int) -> None:
        full = self.register(schema)
        cls = self.types.get(full.rsplit(".", 1)[-1])
        table: dict[str, bytes] = {}
        for index, symbol in enumerate(schema["symbols"]):
            # Keyed by the enum's members where the class has them: equal to the plain symbols, found faster.
            member = getattr(cls, "_value2member_map_", {}).get(symbol, symbol)
            table[member] = _varint(index << 1)
        c = self.code
        e = c.var("e")
        c.emit(d, f"{e} = {c.const(table, '_enum')}.get({x})")
        c.emit(d, f"if {e} is None:")
        self.unsupported(d + 1, f"not a symbol of {full}")
        c.emit(d, f"out += {e}")

    def fixed(self, schema: Mapping[str, Any], x: str, d: int) -> None:
        full = self.register(schema)
        if schema.get("logicalType") is not None:
            raise UnsupportedSchema(f"logical type {schema['logicalType']!r} on fixed {full}")
        c = self.code
        c.emit(d, f"if type({x}) is not bytes or len({x}) != {int(schema['size'])}:")
        self.unsupported(d + 1, f"fixed {full} wants {schema['size']} bytes")
        c.emit(d, f"out += {x}")

    def array(self, schema: Mapping[str, Any], x: str, d: int) -> None:
        c = self.code
        c.emit(d, f"if type({x}) is not tuple and type({x}) is not list:")
        self.unsupported(d + 1, "array wants a tuple or list")
        c.emit(d, f"if {x}:")
        self.length(f"len({x})", d + 1)
        item = c.var("i")
        c.emit(d + 1, f"for {item} in {x}:")
        self.value(schema["items"], item, d + 2)
        c.emit(d, "out += b'\\x00'")

    def map(self, schema: Mapping[str, Any], x: str, d: int) -> None:
        c = self.code
        c.emit(d, f"if type({x}) is not dict:")
        self.unsupported(d + 1, "map wants a dict")
        c.emit(d, f"if {x}:")
        self.length(f"len({x})", d + 1)
        key, val = c.var("k"), c.var("m")
        c.emit(d + 1, f"for {key}, {val} in {x}.items():")
        self.primitive("string", None, key, d + 2)
        self.value(schema["values"], val, d + 2)
        c.emit(d, "out += b'\\x00'")


def _attributes(cls: type) -> frozenset[str]:
    """The attribute names instances of `cls` carry: dataclass fields, else `__slots__`."""
    if dataclasses.is_dataclass(cls):
        return frozenset(f.name for f in dataclasses.fields(cls))
    return frozenset(getattr(cls, "__slots__", ()))


def generate_source(schema: object, types: Mapping[str, type]) -> tuple[str, dict[str, object]]:
    """The Python source of the writer of `schema` (parsed by fastavro) and the constants it refers to.

    Raises:
        UnsupportedSchema: the schema uses something this module does not write (see the module docstring).
    """
    gen = _Generator(types)
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        raise UnsupportedSchema("the top level must be a record")
    return gen.function(schema), gen.code.consts


def build_writer(schema: object, types: Mapping[str, type]) -> RecordWriter:
    """The specialised writer of `schema` (a record schema parsed by fastavro).

    Args:
        schema: the parsed record schema.
        types: the Python class of each record (and, optionally, enum) by its short Avro name.

    Raises:
        UnsupportedSchema: the schema uses something this module does not write (see the module docstring).
    """
    source, consts = generate_source(schema, types)
    namespace: dict[str, Any] = {
        "_Unsupported": UnsupportedValue,
        "_TABLE": _TABLE,
        "_CHUNK": _CHUNK,
        "_varint": _varint,
        "_EPOCH": _EPOCH,
        "_datetime": datetime,
        **consts,
    }
    name = schema.get("name") if isinstance(schema, Mapping) else None
    code = compile(source, f"<avro writer {name}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source; names in it are checked identifiers
    writer: RecordWriter = namespace["write"]
    writer.__doc__ = f"Writes one {name} record (generated from its schema).\n\n{source}"
    return writer
