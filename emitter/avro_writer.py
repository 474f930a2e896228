"""Avro binary writers specialised to one record schema: Python source generated from the schema, compiled once.

fastavro's `schemaless_writer` is generic: it parses the schema again on every call and walks it field by field
through dict lookups, so most of its ~20 µs per `MessageEvent` is interpretation, not encoding. This module reads
the parsed schema once and writes the straight-line code that schema implies (one attribute read, one type check
and one append per field, nested records and unions inlined), so a record costs a few microseconds. Nothing
here names a field: a field added to `schemas/*.avsc` (and to its class in `emitter.records`) is picked up at
the next import.

Two shortcuts, both still derived from the schema: a run of fields at their empty value (None, False, the
empty tuple) is tested together and written as one constant, and an immutable record of scalars outside
arrays and maps (a message's `Group`, its `Sender`) keeps the bytes of the last object written, reused while
that object is.

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
import functools
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
_TRUE: Final = b"\x01"
_FALSE: Final = b"\x00"
_PREFIXED: Final = 128
"""Small values (one varint byte) after a union's branch index come from a table of both bytes."""


@functools.cache
def _prefixed(prefix: bytes) -> tuple[bytes, ...]:
    return tuple(prefix + _TABLE[z] for z in range(_PREFIXED))


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
        self.varying = 0
        """How many arrays and maps enclose the code being generated.

        Records there (a message's entities) are built per item, so a cache of the last one would only cost.
        A record every message has (its group) is shared by the events of one group, and so is a record in a
        union that mapping shares (the sender of a page's messages from one sender); the others in unions
        (reply headers, forwards) are mostly absent, and a miss costs one copy of their few bytes.
        """
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

    def value(self, schema: Any, x: str, d: int, prefix: bytes = b"") -> None:
        """Code appending `prefix` and the encoding of the value in local `x` to `out`, at indentation `d`.

        The prefix is a union's branch index: scalars fold it into their first append.
        """
        if isinstance(schema, list):
            self.flush(prefix, d)
            self.union(schema, x, d)
            return
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                self.primitive(schema, None, x, d, prefix)
                return
            if schema not in self.named:
                raise UnsupportedSchema(f"unknown type {schema!r}")
            schema = self.named[schema]
        kind = schema.get("type")
        if isinstance(kind, (list, dict)):
            self.value(kind, x, d, prefix)  # {"type": {...}} or {"type": [...]}
            return
        if kind in _PRIMITIVES:
            self.primitive(kind, schema.get("logicalType"), x, d, prefix)
            return
        if kind == "enum":
            self.enum(schema, x, d, prefix)
            return
        self.flush(prefix, d)
        if kind in ("record", "error"):
            self.record(schema, x, d)
        elif kind == "fixed":
            self.fixed(schema, x, d)
        elif kind == "array":
            self.array(schema, x, d)
        elif kind == "map":
            self.map(schema, x, d)
        else:
            raise UnsupportedSchema(f"unknown type {kind!r}")

    def flush(self, prefix: bytes, d: int) -> None:
        if prefix:
            self.code.emit(d, f"out += {prefix!r}")

    def unsupported(self, d: int, what: str) -> None:
        self.code.emit(d, f"raise _Unsupported({what!r})")

    def primitive(self, kind: str, logical: object, x: str, d: int, prefix: bytes = b"") -> None:
        c = self.code
        if logical is not None:
            if kind != "long" or logical not in _TIME_UNITS:
                raise UnsupportedSchema(f"logical type {logical!r} on {kind}")
            c.emit(d, f"if type({x}) is not _datetime or {x}.tzinfo is None:")
            self.unsupported(d + 1, f"{logical} wants an aware datetime")
            c.emit(d, f"{x} = ({x} - _EPOCH) // {c.const(_TIME_UNITS[logical], '_unit')}")
            self.integer(x, d, 64, prefix)
        elif kind == "null":
            c.emit(d, f"if {x} is not None:")
            self.unsupported(d + 1, "null wants None")
            self.flush(prefix, d)
        elif kind == "boolean":
            c.emit(d, f"if {x} is True:")
            c.emit(d + 1, f"out += {prefix + _TRUE!r}")
            c.emit(d, f"elif {x} is False:")
            c.emit(d + 1, f"out += {prefix + _FALSE!r}")
            c.emit(d, "else:")
            self.unsupported(d + 1, "boolean wants a bool")
        elif kind in ("int", "long"):
            c.emit(d, f"if type({x}) is not int:")
            self.unsupported(d + 1, f"{kind} wants an int")
            self.integer(x, d, 32 if kind == "int" else 64, prefix)
        elif kind in ("float", "double"):
            c.emit(d, f"if type({x}) is not float:")
            self.unsupported(d + 1, f"{kind} wants a float")
            self.flush(prefix, d)
            c.emit(d, f"out += {c.const(struct.Struct('<f' if kind == 'float' else '<d').pack, '_pack')}({x})")
        elif kind == "string":
            c.emit(d, f"if type({x}) is not str:")
            self.unsupported(d + 1, "string wants a str")
            c.emit(d, f"{x} = {x}.encode()")
            self.length(f"len({x})", d, prefix)
            c.emit(d, f"out += {x}")
        else:  # bytes
            c.emit(d, f"if type({x}) is not bytes:")
            self.unsupported(d + 1, "bytes wants bytes")
            self.length(f"len({x})", d, prefix)
            c.emit(d, f"out += {x}")

    def integer(self, x: str, d: int, bits: int, prefix: bytes = b"") -> None:
        """`prefix` and the zig-zag varint of the int in `x`; a value outside the signed `bits` range is declined."""
        c = self.code
        z = c.var("z")
        # For any int, the 64-bit zig-zag value is below 2**bits exactly when the int fits in `bits` bits.
        c.emit(d, f"{z} = ({x} << 1) ^ ({x} >> 63)")
        if prefix:
            c.emit(d, f"if {z} < {_PREFIXED}:")
            c.emit(d + 1, f"out += {c.const(_prefixed(prefix), '_ptable')}[{z}]")
            c.emit(d, "else:")
            self.flush(prefix, d + 1)
            self.integer_body(z, d + 1, bits)
        else:
            self.integer_body(z, d, bits)

    def integer_body(self, z: str, d: int, bits: int) -> None:
        c = self.code
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

    def length(self, n: str, d: int, prefix: bytes = b"") -> None:
        """`prefix` and the varint of a count or byte length (never negative)."""
        c = self.code
        z = c.var("z")
        c.emit(d, f"{z} = {n} << 1")
        if prefix:
            c.emit(d, f"if {z} < {_PREFIXED}:")
            c.emit(d + 1, f"out += {c.const(_prefixed(prefix), '_ptable')}[{z}]")
            c.emit(d, "else:")
            self.flush(prefix, d + 1)
            c.emit(d + 1, f"out += _TABLE[{z}] if {z} < {_SMALL} else _varint({z})")
        else:
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
        # Every branch check below is at least as strict as fastavro's validation, which picks the branch.
        self.value(other, x, d + 1, _varint((1 - null_index) << 1))

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
        for field in schema["fields"]:
            name = field["name"]
            if not name.isidentifier() or keyword.iskeyword(name) or name not in attributes:
                raise UnsupportedSchema(f"{cls.__name__} has no attribute for field {full}.{name}")
        self.stack.append(full)
        if not self.varying and _immutable(cls) and all(self.scalar(f["type"]) for f in schema["fields"]):
            self.cached_fields(schema["fields"], x, d)
        else:
            self.fields(schema["fields"], x, d)
        self.stack.pop()

    def cached_fields(self, fields: list[Mapping[str, Any]], x: str, d: int) -> None:
        """Fields of an immutable record of scalars, with the last object's bytes kept (a group's `Group`)."""
        c = self.code
        last, start, hit = c.const([(None, b"")], "_last"), c.var("s"), c.var("c")
        # One read of the (object, bytes) pair, so that another thread's update cannot split it.
        c.emit(d, f"{hit} = {last}[0]")
        c.emit(d, f"if {hit}[0] is {x}:")
        c.emit(d + 1, f"out += {hit}[1]")
        c.emit(d, "else:")
        c.emit(d + 1, f"{start} = len(out)")
        self.fields(fields, x, d + 1)
        c.emit(d + 1, f"{last}[0] = ({x}, bytes(out[{start}:]))")

    def fields(self, fields: list[Mapping[str, Any]], x: str, d: int) -> None:
        """The fields in order; a run of fields at their empty value (None, False, ()) is one append."""
        c = self.code
        i = 0
        while i < len(fields):
            run: list[Mapping[str, Any]] = []
            while i + len(run) < len(fields) and self.empty_form(fields[i + len(run)]["type"]) is not None:
                run.append(fields[i + len(run)])
            if len(run) < 2:
                run = [fields[i]]
            names = [c.var("x") for _ in run]
            for name, field in zip(names, run, strict=True):
                c.emit(d, f"{name} = {x}.{field['name']}")
            if len(run) == 1:
                self.value(run[0]["type"], names[0], d)
            else:
                forms = [self.empty_form(f["type"]) for f in run]
                test = " and ".join(form[0].format(name) for form, name in zip(forms, names, strict=True) if form)
                c.emit(d, f"if {test}:")
                c.emit(d + 1, f"out += {b''.join(form[1] for form in forms if form)!r}")
                c.emit(d, "else:")
                for name, field in zip(names, run, strict=True):
                    self.value(field["type"], name, d + 1)
            i += len(run)

    def resolve(self, schema: Any) -> Any:
        """A schema with named references and `{"type": {...}}` wrappers looked through."""
        while True:
            if isinstance(schema, str) and schema in self.named:
                schema = self.named[schema]
            elif isinstance(schema, dict) and isinstance(schema.get("type"), (list, dict)):
                schema = schema["type"]
            else:
                return schema

    def kind(self, schema: Any) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return "union"
        return str(schema if isinstance(schema, str) else schema.get("type"))

    def scalar(self, schema: Any) -> bool:
        """Written from immutable values only: primitives, enums, and unions of them with null."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return all(self.scalar(b) for b in schema)
        return self.kind(schema) in _PRIMITIVES | {"enum", "fixed"}

    def empty_form(self, schema: Any) -> tuple[str, bytes] | None:
        """(test of a value, its encoding) for the value a field usually holds when it says nothing."""
        schema = self.resolve(schema)
        kind = self.kind(schema)
        if kind == "union" and len(schema) == 2 and "null" in [self.kind(b) for b in schema]:
            return "{} is None", _varint([self.kind(b) for b in schema].index("null") << 1)
        if kind == "boolean":
            return "{} is False", b"\x00"
        if kind == "array":
            return "{} is _EMPTY_TUPLE", b"\x00"  # the empty tuple is one object; anything else goes the long way
        if kind == "map":
            return "type({0}) is dict and not {0}", b"\x00"
        return None

    def enum(self, schema: Mapping[str, Any], x: str, d: int, prefix: bytes = b"") -> None:
        full = self.register(schema)
        cls = self.types.get(full.rsplit(".", 1)[-1])
        table: dict[str, bytes] = {}
        for index, symbol in enumerate(schema["symbols"]):
            # Keyed by the enum's members where the class has them: equal to the plain symbols, found faster.
            member = getattr(cls, "_value2member_map_", {}).get(symbol, symbol)
            table[member] = prefix + _varint(index << 1)
        # Anything else raises KeyError (or TypeError), which `write` turns into UnsupportedValue.
        self.code.emit(d, f"out += {self.code.const(table, '_enum')}[{x}]")

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
        self.varying += 1
        self.value(schema["items"], item, d + 2)
        self.varying -= 1
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
        self.varying += 1
        self.value(schema["values"], val, d + 2)
        self.varying -= 1
        c.emit(d, "out += b'\\x00'")


def _immutable(cls: type) -> bool:
    """Whether instances cannot change after construction (frozen dataclasses)."""
    params = getattr(cls, "__dataclass_params__", None)
    return bool(getattr(params, "frozen", False))


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
        "_EMPTY_TUPLE": (),
        **consts,
    }
    name = schema.get("name") if isinstance(schema, Mapping) else None
    code = compile(source, f"<avro writer {name}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source; names in it are checked identifiers
    writer: RecordWriter = namespace["write"]
    writer.__doc__ = f"Writes one {name} record (generated from its schema).\n\n{source}"
    return writer
