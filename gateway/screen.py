"""Checks on a client's JSON body before it is decoded: what msgspec would turn into a
500 (invalid UTF-8, nesting past the interpreter's recursion limit) or silently resolve
one way while the upstream may resolve it the other (a key given twice).

The body goes upstream as the client's bytes, so everything here is judged on the whole
body, unknown fields included. Each check is a byte pre-test that clears the common
request at memchr or regex-prefix speed and falls back to an exact scan only when the
pre-test cannot decide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from gateway.errors import InvalidRequest

# Nesting bound for a request body: serde_json's default (many upstreams parse with it),
# far above real requests (a chat request with tool schemas nests ~10 deep) and far below
# the ~950 levels at which msgspec raises RecursionError.
MAX_DEPTH = 128
# Opening brackets found one memchr at a time before counting them in one pass instead.
_FIND_CAP = 24
_OPENS = (b"{", b"[")
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET_OR_QUOTE = bytes(c for c in range(256) if c not in b'[]{}"')
# A letter or underscore written as a \u escape (what a key the gateway reads is made of):
# no encoder writes one so, a key smuggled past the byte pre-test would.
_ESCAPED_ASCII = re.compile(rb"\\u00[4-7]")


class Keys:
    """The top-level keys a route reads, and the pre-test that finds them quoted."""

    __slots__ = ("_find", "names")

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        alternatives = b"|".join(re.escape(n.encode()) for n in sorted(self.names, key=len, reverse=True))
        self._find = re.compile(b'"(?:' + alternatives + b')"').findall

    def suspect(self, body: bytes) -> bool:
        """Whether a read key may occur twice: one of its names quoted twice anywhere
        (nested keys and string contents included), or an escaped ASCII character."""
        found = self._find(body)
        if len(found) > 1 and len(set(found)) < len(found):
            return True
        return body.find(b"\\") >= 0 and _ESCAPED_ASCII.search(body) is not None


def check(body: bytes, keys: Keys | None = None) -> None:
    """InvalidRequest (400) when ``body`` is not UTF-8, nests deeper than MAX_DEPTH or
    repeats one of ``keys`` at its top level."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError as e:
            raise InvalidRequest(
                f"request body is not valid UTF-8: byte 0x{body[e.start]:02x} at offset {e.start}",
                code="invalid_json",  # RFC 8259: JSON exchanged between systems is UTF-8
            ) from None
    if not _few_opens(body) and nesting_depth(body) > MAX_DEPTH:
        raise InvalidRequest(
            f"request body is nested deeper than {MAX_DEPTH} levels of arrays and objects",
            code="nesting_too_deep",
        )
    if keys is not None and keys.suspect(body):
        repeated = repeated_keys(body) & keys.names
        if repeated:
            name = min(repeated)
            raise InvalidRequest(
                f"key '{name}' is given more than once in the request object; send it once",
                param=name,
                code="duplicate_key",
            )


def _few_opens(body: bytes) -> bool:
    """Whether ``body`` holds at most MAX_DEPTH opening brackets, in strings or not (then
    it cannot nest deeper). Few brackets, as in prose: a memchr per bracket; many: a count."""
    n = 0
    find = body.find
    for ch in _OPENS:
        i = find(ch)
        while i >= 0:
            n += 1
            if n > _FIND_CAP:
                return body.count(b"{") + body.count(b"[") <= MAX_DEPTH
            i = find(ch, i + 1)
    return True


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body``, brackets inside strings not
    counted; for a body that is not JSON, at least the depth a parser reaches before it
    stops. Linear: byte operations only, no loop over characters in Python."""
    if body.find(b"\\") >= 0:
        # Escaped backslashes, then escaped quotes: what remains cannot end a string.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = body.translate(None, _NOT_BRACKET_OR_QUOTE)
    brackets = b"".join(skeleton.split(b'"')[::2]).translate(_BRACKETS)
    # Each round removes every innermost pair: the rounds a balanced run takes are its depth.
    depth = 0
    while brackets:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            break
        brackets = inner
        depth += 1
        if depth > MAX_DEPTH:
            return depth
    # Unbalanced rest (a truncated body): the brackets left open nest inside each other.
    return depth + brackets.count(b"[")


def repeated_keys(body: bytes) -> frozenset[str]:
    """The keys given more than once in ``body``'s top-level object, escapes decoded; empty
    when ``body`` is not a JSON object (the decoder then says why). Depth is checked first."""
    try:
        pairs = json.loads(body, object_pairs_hook=list)
    except ValueError:
        return frozenset()
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        return frozenset()
    seen: set[str] = set()
    repeated: set[str] = set()
    for key, _ in pairs:
        (repeated if key in seen else seen).add(key)
    return frozenset(repeated)
