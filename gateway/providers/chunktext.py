"""The text of an ordinary OpenAI content chunk, read without decoding the chunk.

A stream translated for an SDK client (Anthropic, Gemini, Responses API) is mostly
chunks that carry one piece of text for choice 0 and nothing else. Decoding each into
a Struct is most of the translation's cost, so ``TextChunks.text`` reads such a chunk
from its bytes: it takes the fast path only when the chunk is, byte for byte,

    HEAD "choices":[{"index":0,"delta":{"content":STRING} TAIL

where HEAD is the stream's own chunk head (every field before ``choices``; OpenAI,
vLLM and the gateway repeat it unchanged on every chunk of a stream), learned from a
chunk the translator decoded whole, TAIL one of the ends the common servers write, and
STRING decodes as one JSON string. Such a chunk decodes to exactly that text with
no finish, usage, error, logprobs or other delta field, so the translator's answer is
the one its full decode gives; any other chunk returns None and is decoded whole.
"""

from __future__ import annotations

import msgspec

_string = msgspec.json.Decoder(str).decode
_pairs = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode

_CHOICES = b'"choices":['
_MID = b'"choices":[{"index":0,"delta":{"content":'
# OpenAI's with include_usage, OpenAI's without it, and the shape of vLLM, Ollama, the
# mock and the gateway's own translated chunks.
_TAILS = (
    b'},"logprobs":null,"finish_reason":null}],"usage":null}',
    b'},"logprobs":null,"finish_reason":null}]}',
    b'},"finish_reason":null}]}',
)
_FRAME_TAILS = tuple(t + b"\n\n" for t in _TAILS)
# Top-level fields a translator reads after a stream's first chunk: a head holding one
# of them is not learned, so a fast chunk never hides them.
_READ = frozenset(("choices", "usage", "error", "extra_fields"))
# Chunks decoded whole while no head is learned, before giving up on this stream.
_TRIES = 4


class TextChunks:
    """Per stream: ``learn`` from decoded chunks, ``text`` of the ordinary ones."""

    __slots__ = ("_frame_head", "_head", "_start", "_tries")

    def __init__(self) -> None:
        self._head = b""
        self._frame_head = b""  # b"data: " HEAD _MID
        self._start = 0  # where STRING begins: len(HEAD) + len(_MID)
        self._tries = _TRIES

    def learn(self, data: bytes) -> None:
        """``data``: a chunk's JSON that decoded as a valid chunk."""
        if self._head or not self._tries:
            return
        self._tries -= 1
        at = data.find(_CHOICES)
        if at < 2 or data[0] != 0x7B or data[at - 1] != 0x2C:  # '{' ... ','
            return
        head = data[:at]
        if b"\n" in head:  # a head over several lines: not what a one-line chunk repeats
            return
        try:
            # HEAD is "{" and whole top-level fields: it closes into an object.
            fields = _pairs(head[:-1] + b"}")
        except msgspec.DecodeError:
            return
        if _READ.isdisjoint(fields):
            self._head, self._start = head, at + len(_MID)
            self._frame_head = b"data: " + head + _MID

    def frame_text(self, region: bytes) -> str | None:
        """The text of a region that is one ordinary content frame (``data: `` JSON and
        the blank line), else None: what ``text`` gives for its JSON, without the split."""
        head = self._frame_head
        # One line: JSON whitespace may hold a newline, a data line may not.
        if not head or not region.startswith(head) or region.find(b"\n", len(head)) != len(region) - 2:
            return None
        for tail in _FRAME_TAILS:
            if region.endswith(tail):
                break
        else:
            return None
        try:
            # One JSON string and nothing else: a second frame in the region fails here.
            text = _string(region[len(head) : len(region) - len(tail)])
        except msgspec.DecodeError:
            return None
        return text or None

    def text(self, data: bytes) -> str | None:
        """The text of an ordinary content chunk (not empty), else None."""
        head = self._head
        if not head or not data.startswith(head) or not data.startswith(_MID, len(head)):
            return None
        for tail in _TAILS:
            if data.endswith(tail):
                break
        else:
            return None
        try:
            text = _string(data[self._start : len(data) - len(tail)])
        except msgspec.DecodeError:
            return None
        return text or None
