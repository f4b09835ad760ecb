"""Checks on a client's JSON body around its decoding: what msgspec would turn into a 500
(invalid UTF-8, nesting past the interpreter's recursion limit) or silently resolve one
way while an upstream may resolve it the other (a key given twice).

The body goes upstream as the client's bytes, so UTF-8 is judged on the whole body,
unknown fields included, at ``isascii`` speed for the common ASCII body. Nesting is bounded
by the decoder itself: msgspec recurses once per level and raises RecursionError past the
interpreter's limit (about 900 levels from a request handler; a real request nests ~10
deep), which ``codec.decode_request`` answers as a 400 (``NESTING``) at no cost to any
other request. Repeated keys are looked for only where they could change what the gateway
authorizes (``Keys``; with access control configured): a byte pre-test that clears the
common body, then an exact scan of the top level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from gateway.errors import InvalidRequest

# The 400 for a body nested past the decoder's recursion limit.
NESTING = "request body is nested too deeply (past about 900 levels of arrays and objects)"
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
    """InvalidRequest (400) when ``body`` is not UTF-8 or repeats one of ``keys`` at its
    top level (``keys`` None: not looked for)."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError as e:
            raise InvalidRequest(
                f"request body is not valid UTF-8: byte 0x{body[e.start]:02x} at offset {e.start}",
                code="invalid_json",  # RFC 8259: JSON exchanged between systems is UTF-8
            ) from None
    if keys is not None and keys.suspect(body):
        repeated = repeated_keys(body) & keys.names
        if repeated:
            name = min(repeated)
            raise InvalidRequest(
                f"key '{name}' is given more than once in the request object; send it once",
                param=name,
                code="duplicate_key",
            )


def repeated_keys(body: bytes) -> frozenset[str]:
    """The keys given more than once in ``body``'s top-level object, escapes decoded; empty
    when ``body`` is not a JSON object (the decoder then says why)."""
    try:
        # Numbers kept as text: json refuses integers past 4300 digits, which msgspec skips
        # in an unknown field; a failure here would read as "nothing repeated".
        pairs = json.loads(body, object_pairs_hook=list, parse_int=str, parse_float=str, parse_constant=str)
    except (ValueError, RecursionError):  # the decoder says why
        return frozenset()
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        return frozenset()
    seen: set[str] = set()
    repeated: set[str] = set()
    for key, _ in pairs:
        (repeated if key in seen else seen).add(key)
    return frozenset(repeated)
