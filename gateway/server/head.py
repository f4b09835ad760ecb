"""Request heads aiohttp's parser refuses: a harmless header given twice is served, and
what is malformed is said in a few words that quote no client bytes.

aiohttp's request parser refuses a second line of any header RFC 9110 calls a singleton
(``Duplicate 'User-Agent' header found.``). Real clients send some twice (the google-genai
SDK sends ``User-Agent`` twice on every request), and for most of them two values harm
nothing here: the gateway reads none of them and forwards none to an upstream. Those are
``HARMLESS_REPEATS``; a head repeating them is parsed again with the repeats left out
(the first line of each is kept). The rest stay refused: ``Host`` (RFC 9112 requires a
400; which host a request is for must not depend on who reads it), ``Content-Length`` and
``Transfer-Encoding`` (two readers framing one body differently is request smuggling).

Parsing again needs the head's bytes from its first, and where a request begins is known
for certain only for a connection's first request (aiohttp's parser tells where none
ends). So a connection's parser is ``FirstHead`` until its first head is parsed; a
request served this way closes its connection after its answer, so a client that sends
such heads gets each request onto a new connection, each one a first request. A later
request on a connection with a repeated header is still a 400. From the first head on,
the connection's parser is aiohttp's own, untouched: nothing is added to any request but
a connection's first."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.http import HttpRequestParser
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, InvalidURLError, LineTooLong
from aiohttp.web_protocol import RequestPayloadError

# aiohttp's singletons (``http_parser.SINGLETON_HEADERS``) whose repeats the gateway
# accepts: none is read by it, none is forwarded upstream; Server and ETag are response
# headers, meaningless in a request. Not here, so still refused: host, content-length,
# transfer-encoding.
HARMLESS_REPEATS = frozenset(
    [b"user-agent", b"content-type", b"content-location", b"content-range", b"etag", b"max-forwards", b"server"]
)
# How much of a first head is held while it arrives in more than one packet; past it, a
# repeated header is refused as before. Far above a real head (~0.5-4 KB).
MAX_HELD_BYTES = 64 * 1024
# The access log and the answer say what was malformed in at most this many characters.
MAX_DETAIL_CHARS = 200

_REPEATED = re.compile(r"Duplicate '([A-Za-z0-9-]+)' header found")
_END = b"\r\n\r\n"
_NOTHING: tuple[tuple[()], bool, bytes] = ((), False, b"")
# Client bytes in a parser's message: a bytes repr, or a quoted string that is not a bare
# token (aiohttp quotes header names: "Missing 'Host' header"; those are kept).
# A quote inside a word ("can't") is not one.
_QUOTES = re.compile(r"""(?<![A-Za-z0-9])(?:(['"][A-Za-z0-9-]{1,64}['"])|b['"]|['"])""")
# A header line quoted by llhttp's messages (the line from its start): its name.
_QUOTED_NAME = re.compile(r"""^b['"]([A-Za-z0-9-]{1,64}):""")


def repeated_harmless(exc: BaseException) -> bool:
    """``exc`` is the parser's refusal of a repeated header whose repeats are accepted."""
    if not isinstance(exc, BadHttpMessage):
        return False
    m = _REPEATED.fullmatch(exc.message.rstrip("."))
    return m is not None and m[1].lower().encode() in HARMLESS_REPEATS


def drop_repeats(head: bytes) -> bytes:
    """``head`` (request line and header lines, without the blank line) with every line
    after the first of a ``HARMLESS_REPEATS`` header left out."""
    lines = head.split(b"\r\n")
    seen: set[bytes] = set()
    kept = [lines[0]]
    for line in lines[1:]:
        name = line.partition(b":")[0].lower()
        if name in HARMLESS_REPEATS:
            if name in seen:
                continue
            seen.add(name)
        kept.append(line)
    return b"\r\n".join(kept)


def malformed_detail(exc: BaseException | None, fallback: str = "") -> str:
    """What the parser found malformed, without the client's bytes it quotes (a header
    value may be a credential): "Invalid header value char (header Authorization)"."""
    if isinstance(exc, InvalidURLError):  # its message may be the target itself
        desc, newline, _ = exc.message.partition("\n")  # llhttp's own words, then the quoted line
        what = f"invalid request target: {desc.rstrip(' :.')}" if newline else "invalid request target"
        return what[:MAX_DETAIL_CHARS]
    if not isinstance(exc, HttpProcessingError):
        return (fallback or str(exc or ""))[:MAX_DETAIL_CHARS]
    words: list[str] = []
    name = None
    for raw in exc.message.split("\n"):
        line = raw.strip()
        if not line or line.startswith("^"):  # llhttp's pointer under the quoted line
            continue
        quoted = _QUOTED_NAME.match(line)
        if quoted is not None:
            # llhttp quotes the line from its start; LineTooLong may quote a bare value.
            if not isinstance(exc, LineTooLong):
                name = quoted[1]
            continue
        cut = next((m.start() for m in _QUOTES.finditer(line) if m[1] is None), len(line))
        text = line[:cut].rstrip(" :.")
        if text:
            words.append(text)
    detail = ": ".join(words) or "malformed request"
    if name is not None:
        detail += f" (header {name})"
    return detail[:MAX_DETAIL_CHARS]


def new_parser(protocol: Any) -> HttpRequestParser:
    """A request parser as ``web.RequestHandler.__init__`` builds one (the same arguments,
    read back from the connection; pinned by tests/unit/server/test_aiohttp_pins.py)."""
    return HttpRequestParser(
        protocol,
        protocol._loop,
        protocol._read_bufsize,
        max_line_size=protocol.max_line_size,
        max_field_size=protocol.max_field_size,
        max_headers=protocol.max_headers,
        payload_exception=RequestPayloadError,
        auto_decompress=protocol.auto_decompress,
        max_msg_queue_size=protocol._max_msg_queue_size,
    )


class FirstHead:
    """A connection's request parser until its first request head is parsed: aiohttp's
    own, its bytes held meanwhile. When aiohttp's refuses a head for a harmless repeated
    header, the head is parsed again by a new parser with the repeats left out (waiting
    for the head's end if it has not come yet), and that parser is the connection's from
    then on; so it is too once a head is parsed. The connection's ``_parser`` is this
    object, then the parser (RequestHandler's attribute; pinned)."""

    __slots__ = ("_held", "_parser", "_protocol", "_refused")

    def __init__(self, protocol: Any, parser: Any) -> None:
        self._protocol = protocol
        self._parser = parser
        self._held: list[bytes] = []
        self._refused: BaseException | None = None  # waiting for the refused head's end

    def feed_data(self, data: bytes) -> Any:
        if self._refused is not None:
            return self._reparse(data, self._refused)
        try:
            result = self._parser.feed_data(data)
        except BadHttpMessage as exc:
            if not repeated_harmless(exc):
                raise
            return self._reparse(data, exc)
        # A head is parsed, or one too long to hold: aiohttp's parser alone from here on.
        if result[0] or self._hold(data):
            self._protocol._parser = self._parser
        return result

    def _hold(self, data: bytes) -> bool:
        """Holds ``data``; True when the head is too long to be held."""
        self._held.append(data)
        return sum(map(len, self._held)) > MAX_HELD_BYTES

    def _reparse(self, data: bytes, refused: BaseException) -> Any:
        if self._hold(data):
            raise refused
        held = b"".join(self._held)
        end = held.find(_END)
        if end < 0:  # the head's end is still to come (the head timer bounds the wait)
            self._held = [held]
            self._refused = refused
            return _NOTHING
        parser = self._protocol._parser = new_parser(self._protocol)
        messages, upgraded, tail = parser.feed_data(drop_repeats(held[:end]) + held[end:])
        if messages:
            # Where this connection's next request begins is known for certain to no
            # parser: it closes after this answer (see the module's docstring).
            msg, payload = messages[0]
            messages[0] = (msg._replace(should_close=True), payload)
        return messages, upgraded, tail

    def __getattr__(self, name: str) -> Any:  # what else RequestHandler asks of a parser
        return getattr(self._parser, name)
