"""Provider keys scrubbed from what an upstream sends back.

An upstream may quote the key it was sent: OpenAI's 401 says "Incorrect API key
provided: sk-...", and a proxy may echo it in an in-band error frame of a stream or in
a header. The keys are a provider's configured ones and a client's own
(``x-bf-direct-key``), which must not reach the logs nor, for the configured ones, the
client.

A key is found plain, and in JSON text also escaped: ``\\u002d`` for ``-``, any or every
character written ``\\uXXXX``, ``\\/`` for ``/``. The body is not decoded: one pattern
per key accepts each character plain or escaped, and it runs only when the text holds a
backslash. Scrubbed: error bodies, stream error frames, error messages and the relayed
headers; never a successful answer's body, so the success path pays only the header check.
Keys shorter than MIN_KEY_CHARS are not scrubbed: replacing them would garble any text.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

REDACTED = b"[redacted]"
_REDACTED_TEXT = REDACTED.decode()
# Shorter keys are test placeholders; a common substring that short would be replaced
# all over an error text.
MIN_KEY_CHARS = 8
_JSON_SHORT = {"/": rb"\\/", '"': rb"\\\"", "\\": rb"\\\\"}


def _hex_digit(d: str) -> bytes:
    return b"[%s%s]" % (d.lower().encode(), d.upper().encode()) if d.isalpha() else d.encode()


def _char_pattern(c: str) -> bytes:
    """``c`` plain or as a JSON escape."""
    code = f"{ord(c):04x}"
    escaped = rb"\\u" + b"".join(_hex_digit(d) for d in code)
    plain = re.escape(c).encode()
    short = _JSON_SHORT.get(c)
    return b"(?:%s|%s%s)" % (plain, escaped, b"|" + short if short else b"")


def _pattern(keys: Iterable[str]) -> re.Pattern[bytes] | None:
    alternatives = [b"".join(_char_pattern(c) for c in k) for k in keys]
    return re.compile(b"|".join(alternatives)) if alternatives else None


class Scrubber:
    """The keys of one provider, found in bytes, text and headers."""

    __slots__ = ("_escaped", "_keys", "_shortest", "_texts")

    def __init__(self, keys: Iterable[str]) -> None:
        usable = sorted({k for k in keys if len(k) >= MIN_KEY_CHARS}, key=len, reverse=True)
        self._texts = tuple(usable)
        # No value shorter than this can hold a key (none configured: no value can).
        self._shortest = len(usable[-1]) if usable else sys.maxsize
        self._keys = tuple(k.encode() for k in usable)
        self._escaped = _pattern(usable)  # built once; a client's own key gets one per error

    def body(self, data: bytes, *, secret: str | None = None) -> bytes:
        """``data`` (an error body or frame) with every key replaced by ``[redacted]``."""
        keys = self._keys
        if secret is not None and len(secret) >= MIN_KEY_CHARS:
            keys = (*keys, secret.encode())
        for key in keys:
            if key in data:
                data = data.replace(key, REDACTED)
        if data.find(b"\\") >= 0:
            escaped = self._escaped
            if secret is not None and len(secret) >= MIN_KEY_CHARS:
                escaped = _pattern((*self._texts, secret))
            if escaped is not None:
                data = escaped.sub(REDACTED, data)
        return data

    def text(self, text: str, *, secret: str | None = None) -> str:
        """An error message (for a log line) without the keys."""
        keys = self._texts if secret is None or len(secret) < MIN_KEY_CHARS else (*self._texts, secret)
        if not any(k in text for k in keys) and "\\" not in text:
            return text
        return self.body(text.encode(), secret=secret).decode("utf-8", "replace")

    def headers(self, headers: list[tuple[str, str]], *, secret: str | None = None) -> list[tuple[str, str]]:
        """The relayed upstream headers with the keys replaced in their values."""
        keys, shortest = self._texts, self._shortest
        if secret is not None and len(secret) >= MIN_KEY_CHARS:
            keys, shortest = (*keys, secret), min(shortest, len(secret))
        for _, value in headers:
            if len(value) >= shortest:  # most values (rate-limit counts) are shorter than any key
                for k in keys:
                    if k in value:
                        return self._replaced(headers, keys)
        return headers

    @staticmethod
    def _replaced(headers: list[tuple[str, str]], keys: tuple[str, ...]) -> list[tuple[str, str]]:
        out = []
        for name, value in headers:
            for k in keys:
                value = value.replace(k, _REDACTED_TEXT)
            out.append((name, value))
        return out
