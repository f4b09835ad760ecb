"""A JSON value valid against a JSON Schema, as a model would fill it in: what the fake
LLM (``providers.mock``) answers for a tool call's arguments and for structured output
(``response_format``).

Deterministic and plainly fake: an ``enum``'s first value, a ``const``, a ``default``,
else by type "mock", 1, 1.5, true, null, one array element, an object's properties.
Covers what pydantic and the SDKs emit: ``$ref`` into ``$defs`` / ``definitions``,
``anyOf`` / ``oneOf`` (the first branch), ``allOf`` (merged), ``prefixItems``, nullable
type lists, string lengths and formats, number bounds, ``minItems`` / ``maxItems``.
A recursive ``$ref`` is followed twice on a path, then filled with its smallest valid
value (null if allowed, ``[]``, only the required properties). ``pattern`` is not
honoured: it would take a regex generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType, field

from gateway.errors import InvalidRequest

# The work a schema may cost: values built (references expanded, elements, properties).
# A generous model's schema needs a few hundred; this stops a fan-out of references.
_MAX_VALUES = 20_000
# Nesting of the built value, well under Python's recursion limit (a few frames a level).
_MAX_DEPTH = 64
# A recursive reference is expanded this many times on a path before the smallest
# valid value stops it: enough to show the shape, finite for any satisfiable schema.
_REF_REPEATS = 2
# minLength beyond this is refused rather than built.
_MAX_STRING_CHARS = 4096
# A schema larger than this is refused before it is decoded (OpenAI's own limits on a
# strict schema, 5,000 properties and 10 levels, fit in far less).
MAX_SCHEMA_BYTES = 256 * 1024

# A valid example per string format (annotations otherwise: an unknown one gets "mock").
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "PT1S",
    "email": "mock@example.com",
    "idn-email": "mock@example.com",
    "uri": "https://example.com/mock",
    "iri": "https://example.com/mock",
    "uri-reference": "https://example.com/mock",
    "url": "https://example.com/mock",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",  # version 4, RFC variant
}


class Schema(Struct, kw_only=True):
    """The keywords the builder reads; the rest (title, description, ...) are ignored."""

    type: str | list[str] | None = None
    properties: dict[str, Schema | bool] | None = None
    required: list[str] | None = None
    additionalProperties: Schema | bool | None = None
    enum: list[Any] | None = None
    const: Any | UnsetType = UNSET
    default: Any | UnsetType = UNSET
    nullable: bool | None = None  # OpenAPI's spelling of ["...", "null"]
    anyOf: list[Schema | bool] | None = None
    oneOf: list[Schema | bool] | None = None
    allOf: list[Schema | bool] | None = None
    ref: str | None = field(default=None, name="$ref")
    defs: dict[str, Schema | bool] | None = field(default=None, name="$defs")
    definitions: dict[str, Schema | bool] | None = None
    items: Schema | bool | list[Schema | bool] | None = None
    prefixItems: list[Schema | bool] | None = None
    minItems: int | None = None
    maxItems: int | None = None
    minLength: int | None = None
    maxLength: int | None = None
    format: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | bool | None = None  # a bool in draft 4
    exclusiveMaximum: float | bool | None = None
    multipleOf: float | None = None


class SchemaError(Exception):
    """A schema no value can be built for, or one past the work caps."""


def example(schema: Schema | bool, *, fill_all: bool, lenient: bool) -> object:
    """A value valid against ``schema``. ``fill_all``: every property of an object, as
    strict mode requires (also where ``additionalProperties`` is false or ``required``
    is absent); otherwise the required ones. ``lenient``: a part the builder cannot
    read (unknown type, missing reference) becomes null instead of an error. Raises
    SchemaError, always for the work caps."""
    return _Builder(schema, fill_all=fill_all, lenient=lenient).value(schema, where="#", depth=0, minimal=False)


_decode_schema: Callable[[Raw | bytes], Schema | bool] = msgspec.json.Decoder(Schema | bool).decode


def decode(raw: Raw | bytes, *, param: str) -> Schema | bool:
    """Raises InvalidRequest (``param``) for a schema too large or of the wrong shape."""
    if len(raw) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"mock provider: {param} is larger than {MAX_SCHEMA_BYTES} bytes", param=param)
    try:
        return _decode_schema(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as e:
        raise InvalidRequest(f"mock provider: invalid {param}: {e}", param=param) from None


# What the fake reads of a request's response_format.
class _JSONSchema(Struct, kw_only=True):
    schema_: Raw | UnsetType = field(default=UNSET, name="schema")
    strict: bool | None = None


class _ResponseFormat(Struct, kw_only=True):
    type: str
    json_schema: _JSONSchema | None = None


_decode_response_format = msgspec.json.Decoder(_ResponseFormat | None).decode
_encode = msgspec.json.Encoder().encode
_SCHEMA_PARAM = "response_format.json_schema.schema"


def structured_content(response_format: Raw, *, text: str) -> str | None:
    """The JSON document a chat request's ``response_format`` asks for, as the answer's
    content: valid against ``json_schema.schema``, or ``{"answer": text}`` for
    ``json_object`` (and a json_schema without a schema). None for ``text``. Raises
    InvalidRequest (param ``response_format...``) for a format or schema it cannot
    answer."""
    try:
        rf = _decode_response_format(response_format)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as e:
        raise InvalidRequest(f"mock provider: invalid response_format: {e}", param="response_format") from None
    if rf is None or rf.type == "text":
        return None
    if rf.type not in ("json_object", "json_schema"):
        raise InvalidRequest(
            f"mock provider: unsupported response_format type {rf.type!r}", param="response_format.type"
        )
    answer = _encode({"answer": text}).decode()
    if rf.type == "json_object":
        return answer
    js = rf.json_schema
    if js is None:
        raise InvalidRequest("mock provider: response_format json_schema needs json_schema", param="response_format")
    if js.schema_ is UNSET:
        return answer  # any JSON document is valid
    schema = decode(js.schema_, param=_SCHEMA_PARAM)
    try:
        value = example(schema, fill_all=bool(js.strict), lenient=False)
    except SchemaError as e:
        raise InvalidRequest(f"mock provider: {_SCHEMA_PARAM}: {e}", param=_SCHEMA_PARAM) from None
    return _encode(value).decode()


class _Builder:
    __slots__ = ("_defs", "_fill_all", "_lenient", "_on_path", "_root", "_values")

    def __init__(self, root: Schema | bool, *, fill_all: bool, lenient: bool) -> None:
        self._root = root
        self._defs = {} if isinstance(root, bool) else {**(root.definitions or {}), **(root.defs or {})}
        self._fill_all = fill_all
        self._lenient = lenient
        self._on_path: dict[str, int] = {}  # reference -> expansions on the current path
        self._values = 0

    def _fail(self, message: str, where: str) -> object:
        """Null where lenient (a guess at what the part meant), else SchemaError."""
        if not self._lenient:
            raise SchemaError(f"{message} at {where}")
        return None

    def value(self, s: Schema | bool, *, where: str, depth: int, minimal: bool) -> object:
        self._values += 1
        if self._values > _MAX_VALUES:
            raise SchemaError(f"more than {_MAX_VALUES} values to build")
        if depth > _MAX_DEPTH:
            raise SchemaError(f"nested deeper than {_MAX_DEPTH} levels at {where}")
        if isinstance(s, bool):  # true: anything goes
            return None if s else self._fail("a false schema admits no value", where)
        if s.ref is not None:
            return self._ref(s.ref, where=where, depth=depth, minimal=minimal)
        if s.const is not UNSET:
            return s.const
        if s.enum is not None:
            return s.enum[0] if s.enum else self._fail("an empty enum admits no value", where)
        if s.default is not UNSET:
            return s.default
        if minimal and s.nullable:
            return None
        for key, branches in (("anyOf", s.anyOf), ("oneOf", s.oneOf)):
            if branches:
                i = _smallest(branches) if minimal else 0
                return self.value(branches[i], where=f"{where}/{key}/{i}", depth=depth + 1, minimal=minimal)
        if s.allOf:
            return self.value(self._merged(s, where=where), where=where, depth=depth + 1, minimal=minimal)
        return self._typed(s, where=where, depth=depth, minimal=minimal)

    def _typed(self, s: Schema, *, where: str, depth: int, minimal: bool) -> object:
        kind = s.type
        if isinstance(kind, list):  # ["string", "null"]
            if minimal and "null" in kind:
                return None
            kind = next((k for k in kind if k != "null"), "null" if kind else None)
        if kind is None:  # untyped: the shape its keywords imply, else anything
            kind = "object" if s.properties else "array" if s.items or s.prefixItems else "null"
        if kind == "string":
            return self._string(s, where=where)
        if kind == "integer":
            return self._integer(s, where=where)
        if kind == "number":
            return self._number(s, where=where)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        if kind == "array":
            return self._array(s, where=where, depth=depth, minimal=minimal)
        if kind == "object":
            return self._object(s, where=where, depth=depth, minimal=minimal)
        return self._fail(f"unknown type {kind!r}", where)

    def _target(self, ref: str) -> Schema | bool | None:
        if ref == "#":
            return self._root
        prefix, _, name = ref.rpartition("/")
        if prefix not in ("#/$defs", "#/definitions"):
            return None
        return self._defs.get(name.replace("~1", "/").replace("~0", "~"))

    def _ref(self, ref: str, *, where: str, depth: int, minimal: bool) -> object:
        target = self._target(ref)
        if target is None:
            return self._fail(f"$ref {ref!r} is not in $defs or definitions", where)
        seen = self._on_path.get(ref, 0)
        self._on_path[ref] = seen + 1
        try:
            return self.value(target, where=ref, depth=depth + 1, minimal=minimal or seen >= _REF_REPEATS)
        finally:
            self._on_path[ref] = seen

    def _merged(self, s: Schema, *, where: str) -> Schema:
        """``allOf``'s branches as one schema: their properties and required names
        together, the first type, enum, const or format that any of them sets."""
        merged = msgspec.structs.replace(s, allOf=None)
        properties, required = dict(s.properties or {}), list(s.required or ())
        for i, branch in enumerate(s.allOf or ()):
            b = self._resolved(branch, where=f"{where}/allOf/{i}")
            if b is None:
                continue
            properties.update(b.properties or {})
            required += b.required or ()
            for name in ("type", "enum", "const", "format", "items", "anyOf", "oneOf", "minimum", "maximum"):
                current = getattr(merged, name)
                if current is None or current is UNSET:
                    setattr(merged, name, getattr(b, name))
        merged.properties = properties or None
        merged.required = list(dict.fromkeys(required)) if s.required is not None or required else None
        return merged

    def _resolved(self, s: Schema | bool, *, where: str) -> Schema | None:
        for _ in range(_MAX_DEPTH):
            if isinstance(s, bool):
                if not s:
                    self._fail("a false schema admits no value", where)
                return None
            if s.ref is None:
                return s
            target = self._target(s.ref)
            if target is None:
                self._fail(f"$ref {s.ref!r} is not in $defs or definitions", where)
                return None
            s = target
        raise SchemaError(f"$ref chain longer than {_MAX_DEPTH} at {where}")

    def _string(self, s: Schema, *, where: str) -> object:
        lo, hi = s.minLength or 0, s.maxLength
        if lo > _MAX_STRING_CHARS:
            raise SchemaError(f"minLength above {_MAX_STRING_CHARS} at {where}")
        if hi is not None and lo > hi:
            return self._fail("minLength is above maxLength", where)
        formatted = _FORMATS.get(s.format) if s.format else None
        if formatted is not None:
            return formatted
        text = ("mock" * (lo // 4 + 1))[: max(lo, 4)]
        return text if hi is None else text[:hi]

    def _integer(self, s: Schema, *, where: str) -> object:
        lo = _bound(s.minimum, s.exclusiveMinimum, low=True)
        hi = _bound(s.maximum, s.exclusiveMaximum, low=False)
        lo_i = None if lo is None else (math.floor(lo[0]) + 1 if lo[1] else math.ceil(lo[0]))
        hi_i = None if hi is None else (math.ceil(hi[0]) - 1 if hi[1] else math.floor(hi[0]))
        v = 1
        if lo_i is not None and v < lo_i:
            v = lo_i
        if hi_i is not None and v > hi_i:
            v = hi_i
        m = s.multipleOf
        if m and m == int(m) and v % int(m):
            v += int(m) - v % int(m)
        if (lo_i is not None and v < lo_i) or (hi_i is not None and v > hi_i):
            return self._fail("no integer fits minimum, maximum and multipleOf", where)
        return v

    def _number(self, s: Schema, *, where: str) -> object:
        lo = _bound(s.minimum, s.exclusiveMinimum, low=True)
        hi = _bound(s.maximum, s.exclusiveMaximum, low=False)

        def fits(x: float) -> bool:
            above = lo is None or x > lo[0] or (x == lo[0] and not lo[1])
            return above and (hi is None or x < hi[0] or (x == hi[0] and not hi[1]))

        candidates = [1.5]
        if lo is not None and hi is not None:
            candidates += [(lo[0] + hi[0]) / 2, lo[0]]
        elif lo is not None:
            candidates += [lo[0], lo[0] + 1]
        elif hi is not None:
            candidates += [hi[0], hi[0] - 1]
        m = s.multipleOf
        for x in candidates:
            if m:
                x = math.ceil(x / m) * m
            if fits(x):
                return x
        return self._fail("no number fits minimum, maximum and multipleOf", where)

    def _array(self, s: Schema, *, where: str, depth: int, minimal: bool) -> object:
        items = s.items
        prefix = s.prefixItems or (items if isinstance(items, list) else [])
        rest: Schema | bool = True if items is None or isinstance(items, list) else items
        lo, hi = s.minItems or 0, s.maxItems
        n = lo if minimal else max(lo, len(prefix) or 1)
        if hi is not None:
            n = min(n, hi)
        if rest is False:
            n = min(n, len(prefix))
        if n < lo:
            return self._fail("minItems is above maxItems or the items allowed", where)
        return [
            self.value(
                prefix[i] if i < len(prefix) else rest, where=f"{where}/items/{i}", depth=depth + 1, minimal=minimal
            )
            for i in range(n)
        ]

    def _object(self, s: Schema, *, where: str, depth: int, minimal: bool) -> object:
        props = s.properties or {}
        required = s.required
        if minimal:
            names: list[str] = list(required or ())
        elif required is None or self._fill_all or s.additionalProperties is False:
            names = [*props, *(n for n in required or () if n not in props)]
        else:
            names = required
        return {
            n: self.value(props[n], where=f"{where}/properties/{n}", depth=depth + 1, minimal=minimal)
            if n in props
            else None
            for n in names
        }


def _bound(inclusive: float | None, exclusive: float | bool | None, *, low: bool) -> tuple[float, bool] | None:
    """The tighter of a bound's two spellings: (value, exclusive), or None."""
    if isinstance(exclusive, bool):  # draft 4: a flag on minimum / maximum
        return None if inclusive is None else (inclusive, exclusive)
    if exclusive is None:
        return None if inclusive is None else (inclusive, False)
    if inclusive is None:
        return (exclusive, True)
    tighter_exclusive = exclusive >= inclusive if low else exclusive <= inclusive
    return (exclusive, True) if tighter_exclusive else (inclusive, False)


def _smallest(branches: list[Schema | bool]) -> int:
    """The branch with the smallest value, the first of the lowest rank: one that admits
    null, a scalar, an array (empty unless minItems), an object without required
    properties, anything else (a reference, an object with required properties)."""
    return min(range(len(branches)), key=lambda i: _rank(branches[i]))


def _rank(b: Schema | bool) -> int:
    if isinstance(b, bool):
        return 0 if b else 5
    if b.nullable or b.type == "null" or _lists_null(b.type):
        return 0
    if b.ref is not None:
        return 4
    if b.const is not UNSET or b.enum or b.type in ("string", "integer", "number", "boolean"):
        return 1
    if b.type == "array":
        return 2
    if b.type == "object" and not b.required:
        return 3
    return 4


def _lists_null(kind: str | list[str] | None) -> bool:
    return isinstance(kind, list) and "null" in kind
