"""Watching an OpenAI-dialect stream as it passes: usage, the final chunk, counting.

Pure: regions of complete frames in (from ``sse.Framer``), bytes to write out. The
common chunk costs a few byte searches and a frame count; frames are split only when a
marker is present: a ``finish_reason`` set, a ``usage`` object, or ``[DONE]`` (the
last two or three frames of a stream), or when the gateway must count tokens itself.

What the client gets, besides the upstream's bytes: the stream's usage exactly once,
on the final chunk, which also carries ``extra_fields`` and, in its usage, ``cost``.
Clients such as LangChain add usage up over the chunks, so a second one would count twice.
- The client asked (``stream_options.include_usage``): OpenAI's shape, the usage-only
  chunk (``choices: []``) last, after the finish chunk.
- It did not: the last ``finish_reason`` chunk, held back until ``[DONE]`` shows it is
  last, carries the usage; the usage-only chunk the gateway asked the upstream for is
  not relayed.
- The upstream reported none: the gateway's own count, marked ``usage_estimated``, in
  the same place (a usage chunk of the gateway's when the client asked for one).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from gateway.accounting.tokens import CompletionCounter
from gateway.accounting.usage import Usage, decode_usage, encode_counted
from gateway.errors import UpstreamProtocolError
from gateway.relay.sse import data_of, split

_DONE_FRAME = b"data: [DONE]\n\n"
# How an ordinary content chunk ends: OpenAI's when usage is requested (every chunk
# carries "usage":null), and the shape vLLM, Ollama and the mock send. One O(1)
# ``endswith`` proves a chunk is neither a finish, usage nor [DONE] frame; anything
# else takes the general check, so these only make the common case cheap.
_PLAIN_TAILS = (b'"finish_reason":null}],"usage":null}\n\n', b'"finish_reason":null}]}\n\n')
_SSE_FIELDS = (b":", b"event:", b"id:", b"retry:", b"data")
# An upstream's in-band error frame ({"error": {...}}); content never holds the quoted
# key (its quotes are escaped), so a region without it holds no error object.
_ERROR = b'"error"'
# How OpenAI's finish chunk ends when usage is asked for: the usage goes in place of null.
_NULL_USAGE_TAIL = b',"usage":null}\n\n'
# How a finish chunk ends that has no usage key, choices last (vLLM, Ollama, the mock).
_CHOICES_TAIL = b"]}\n\n"


class _UsageChunk(Struct):
    choices: list[Raw] = []
    usage: Raw | UnsetType = UNSET


class _ChunkHead(Struct):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""


class _Function(Struct):
    arguments: str | None = None


class _ToolCall(Struct):
    function: _Function | None = None


class _Delta(Struct):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None  # vLLM, DeepSeek
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct):
    delta: _Delta | None = None
    text: str | None = None  # text completions


class _ContentChunk(Struct):
    choices: list[_Choice] = []


_usage_chunk = msgspec.json.Decoder(_UsageChunk).decode
_chunk_head = msgspec.json.Decoder(_ChunkHead).decode
_content_chunk = msgspec.json.Decoder(_ContentChunk).decode
_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode


def _value_at(data: bytes, key_end: int) -> bytes:
    """The first byte of the value after a key ending at ``key_end`` (``: `` skipped)."""
    v = data[key_end + 1 : key_end + 3]  # after the colon
    return v[1:2] if v[:1] == b" " else v[:1]


def is_finish(data: bytes) -> bool:
    """The last ``finish_reason`` in ``data`` is set (a string, not null). Searched from
    the end, where OpenAI-style chunks keep it: ~0.1 µs instead of a full scan. Only the
    last one matters: the final chunk is the last finish chunk before [DONE]."""
    p = data.rfind(b'_reason"')
    return p >= 0 and _value_at(data, p + 8) == b'"'


def has_usage(data: bytes) -> bool:
    """The last ``usage`` in ``data`` is an object (OpenAI sends "usage":null on every
    chunk but the usage-only one, which comes last before [DONE])."""
    p = data.rfind(b'"usage"')
    return p >= 0 and _value_at(data, p + 7) == b"{"


def splice_object(frame: bytes, key: bytes, value: bytes) -> bytes:
    """``data: {...}\\n\\n`` with ``"key": value`` set in its object: appended, or, when
    the upstream already sent that key (it is itself a gateway), replaced."""
    if b'"%s"' % key in frame:
        try:
            fields = _fields(frame[5:-2])
        except (msgspec.ValidationError, msgspec.DecodeError):
            return frame
        fields[key.decode()] = Raw(value)
        return b"data: " + _encode(fields) + b"\n\n"
    body = frame[:-2].rstrip()
    inner = body[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return b'%s%s"%s":%s}\n\n' % (inner, sep, key, value)


def with_usage(frame: bytes, usage: bytes, extra: bytes) -> bytes:
    """``data: {...}\\n\\n`` with its ``usage`` and ``extra_fields`` set. One join when
    the frame ends as OpenAI's finish chunk (``"usage":null`` last, replaced) or as the
    others' (``choices`` last) and has neither key elsewhere; else two splices."""
    if frame.endswith(_NULL_USAGE_TAIL):
        head = frame[: -len(_NULL_USAGE_TAIL)]
    elif frame.endswith(_CHOICES_TAIL):
        head = frame[:-3]
    else:
        head = b""
    if head and b'"usage"' not in head and b'"extra_fields"' not in head:
        return b"".join((head, b',"usage":', usage, b',"extra_fields":', extra, b"}\n\n"))
    return splice_object(splice_object(frame, b"usage", usage), b"extra_fields", extra)


def with_cost(usage_raw: bytes, cost: bytes | None) -> bytes:
    """The usage object ``usage_raw`` with ``"cost"`` added, as ``add_cost`` does inside a body."""
    if cost is None or not usage_raw.endswith(b"}") or b'"cost"' in usage_raw:
        return usage_raw
    inner = usage_raw[:-1].rstrip()
    return b"".join((inner, b'"cost":' if inner.endswith(b"{") else b',"cost":', cost, b"}"))


def usage_at(data: bytes, usage_raw: bytes) -> int:
    """Where the usage object ``usage_raw`` starts in ``data`` (its last occurrence),
    -1 when absent. An object without a quote (``{}``) may also sit inside a later string
    (``"arguments":"{}"``): for one, only an occurrence after ``"usage":`` (or the whole of
    ``data``) counts."""
    at = data.rfind(usage_raw)
    if at < 0 or usage_raw.find(b'"') >= 0 or not usage_raw.strip():  # with a key, not inside a string
        return at
    while at >= 0:
        before = data[:at].rstrip()
        if not before or (before.endswith(b":") and before[:-1].rstrip().endswith(b'"usage"')):
            return at  # the bytes are the usage object itself, or its value
        at = data.rfind(usage_raw, 0, at)
    return -1


def add_cost(frame_or_body: bytes, usage_raw: bytes, cost: bytes) -> bytes:
    """Add ``"cost"`` inside the usage object ``usage_raw`` found in the bytes."""
    at = usage_at(frame_or_body, usage_raw)
    if at < 0 or not usage_raw.rstrip().endswith(b"}") or b'"cost"' in usage_raw:
        # No usage object, or the upstream reported its own cost (what it billed, e.g.
        # OpenRouter, or a gateway in front): that figure is kept, not duplicated.
        return frame_or_body
    inner = usage_raw.rstrip()[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return b"".join((frame_or_body[:at], inner, sep, b'"cost":', cost, b"}", frame_or_body[at + len(usage_raw) :]))


def _plain_prefix(region: bytes) -> int:
    """Where the run of ordinary chunks heading ``region`` ends: walks back frame by
    frame from the end (the stream's last frames are few) to the last ordinary one."""
    cut = len(region)
    while cut:
        start = region.rfind(b"\n\n", 0, cut - 2) + 2  # 1 when no earlier frame: use 0
        start = 0 if start == 1 else start
        if region.endswith(_PLAIN_TAILS, start, cut):
            return cut
        cut = start
    return 0


class Finisher:
    """What the relay knows that the watcher needs at the end, bound per request."""

    __slots__ = ("cost", "counted", "extra")

    def __init__(
        self,
        *,
        extra: Callable[[int, bool, bytes], bytes],
        cost: Callable[[Usage], bytes | None],
        counted: Callable[[int], Usage],
    ) -> None:
        # (chunk_index, usage_estimated, the upstream's last usage or finish chunk's data
        # as it came: x-bf-send-back-raw-response) -> encoded extra_fields
        self.extra = extra
        self.cost = cost  # usage -> encoded cost, None when the model is unpriced
        self.counted = counted  # completion tokens -> usage with the prompt counted


class StreamWatch:
    __slots__ = (
        "_client_usage",
        "_counter",
        "_done",
        "_finish",
        "_held",
        "_held_usage",
        "_redact",
        "_sent",
        "_usage_sent",
        "error",
        "frames",
        "last_data",
        "usage",
        "usage_raw",
    )

    def __init__(
        self,
        *,
        client_usage: bool,
        counter: CompletionCounter | None,
        finish: Finisher,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._client_usage = client_usage
        # Applied to an upstream's in-band error frame (its keys scrubbed, gateway.scrub).
        self._redact = redact
        self._counter = counter
        self._finish = finish
        self._held: bytes | None = None
        self._held_usage = False  # the held frame carries the upstream's usage
        self._usage_sent = False  # a frame with usage has gone to the client
        self._sent = 0  # data frames the client has received
        self._done = False
        self.frames = 0  # data frames the upstream sent
        self.usage: Usage | None = None
        self.usage_raw: bytes = b""
        # The data of the last usage or finish chunk the upstream sent, as it came (a
        # reference, set once or twice a stream): the final chunk's raw_response.
        self.last_data = b""
        # Set when a region held bytes that are not SSE; raised after what came before is sent.
        self.error: UpstreamProtocolError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def process(self, region: bytes) -> bytes:
        """Bytes to send for one region of complete frames."""
        if region.find(b"\n") == len(region) - 2:  # memchr: one single-line frame
            n, plain = 1, region.startswith(b"data:")
        else:
            n = region.count(b"\n\n")
            plain = region.startswith(b"data:") and region.count(b"\n\ndata:") == n - 1
        self.frames += n
        if (
            plain  # data frames only: nothing to check
            and self._counter is None
            and self._held is None
            and (
                # One frame ending as a content chunk is one; several may hide an error frame.
                (region.endswith(_PLAIN_TAILS) and (n == 1 or region.find(_ERROR) < 0))
                or not (
                    region.endswith(_DONE_FRAME) or is_finish(region) or has_usage(region) or region.find(_ERROR) >= 0
                )
            )
        ):
            self._sent += n
            return region
        out: list[bytes] = []
        if plain and self._counter is None and self._held is None and n > 1:
            # A coalesced read ending in the stream's last frames: its head is ordinary
            # chunks, passed as one slice; only the frames from the last ordinary one on
            # are looked at one by one.
            cut = _plain_prefix(region)
            if cut and region.find(_ERROR, 0, cut) < 0:
                self._sent += region.count(b"\n\n", 0, cut)
                out.append(region[:cut])
                region = region[cut:]
                n = 2 if region.find(b"\n") != len(region) - 2 else 1
        try:
            for f in split(region) if n > 1 else (region,):
                out.append(self._frame(f))
        except UpstreamProtocolError as e:
            # The frames before the bad one still go to the client; then the error.
            self.error = e
        return b"".join(out)

    def _frame(self, frame: bytes) -> bytes:
        if frame.endswith(_PLAIN_TAILS) and frame.startswith(b"data: "):
            # An ordinary content chunk (see _PLAIN_TAILS): counted, passed.
            if self._counter is not None:
                self._count(frame[6:-2])
            self._sent += 1
            return self._release() + frame if self._held is not None else frame
        if self._redact is not None and frame.find(_ERROR) >= 0:
            frame = self._redact(frame)  # an error frame may quote the upstream's key
        data = data_of(frame)
        if data is None:
            if not frame.startswith(_SSE_FIELDS):
                raise UpstreamProtocolError("provider sent bytes that are not server-sent events")
            self.frames -= 1  # not a chunk: a keepalive comment must not be billed
            return frame  # a comment, event or id line: passes, never held
        if data == b"[DONE]":
            self._done = True
            self.frames -= 1
            return self._final() + frame
        if self._counter is not None:
            self._count(data)
        if has_usage(data):
            self.last_data = data
            try:
                chunk = _usage_chunk(data)
                if chunk.usage is not UNSET:
                    self.usage_raw = bytes(chunk.usage)
                    self.usage = decode_usage(self.usage_raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise UpstreamProtocolError(f"provider sent an unreadable usage chunk: {e}") from None
            if not chunk.choices:  # the usage-only chunk
                if self._held is not None and (self._held_usage or not self._client_usage):
                    # Its usage goes on the held finish chunk (the final one), or is
                    # already on it: never relayed a second time.
                    return b""
                out = self._release()
                self._held, self._held_usage = frame, True
                return out
            if is_finish(data):  # the upstream put usage on its finish chunk
                out = self._release()
                self._held, self._held_usage = frame, True
                return out
            self._usage_sent = True  # passes as it came
        elif is_finish(data):
            self.last_data = data
            out = self._release()
            self._held, self._held_usage = frame, False
            return out
        self._sent += 1
        return self._release() + frame

    def _count(self, data: bytes) -> None:
        add = self._counter.add  # type: ignore[union-attr]
        try:
            chunk = _content_chunk(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return  # not a chunk the gateway can read; the client still gets it
        for c in chunk.choices:
            if c.text:
                add(c.text)
            d = c.delta
            if d is None:
                continue
            for piece in (d.content, d.reasoning, d.reasoning_content, d.refusal):
                if piece:
                    add(piece)
            for call in d.tool_calls or ():
                if call.function is not None and call.function.arguments:
                    add(call.function.arguments)

    def _release(self) -> bytes:
        held, self._held = self._held, None
        if held is None:
            return b""
        self._sent += 1
        self._usage_sent |= self._held_usage
        return held

    def final_usage(self) -> tuple[Usage, bool]:
        """The usage to account: the upstream's, or counted (estimated)."""
        if self.usage is not None:
            return self.usage, False
        if self._counter is not None:
            return self._finish.counted(self._counter.flush()), True
        # Not counting (the upstream was expected to report): one token per data frame.
        return self._finish.counted(self.frames), True

    def _final(self) -> bytes:
        """The held final chunk, completed, before [DONE]: the stream's usage on it unless
        a frame with usage has gone already (so it never reaches the client twice)."""
        held, carries = self._held, self._held_usage
        self._held = None
        usage, estimated = self.final_usage()
        fin = self._finish
        if held is not None and (carries or self._usage_sent):
            if carries:  # the upstream's usage, where it put it: only its cost is added
                cost = fin.cost(usage)
                if cost is not None:
                    held = add_cost(held, self.usage_raw, cost)
            return splice_object(held, b"extra_fields", fin.extra(self._sent, estimated, self.last_data))
        if self._usage_sent:
            return b""
        cost = fin.cost(usage)
        # Counted (estimated), or the upstream's from its usage-only chunk (not relayed).
        u = encode_counted(usage, cost) if self.usage is None else with_cost(self.usage_raw, cost)
        if held is not None and not self._client_usage:
            # Usage the client did not ask for goes on the finish chunk.
            return with_usage(held, u, fin.extra(self._sent, estimated, self.last_data))
        # The client asked for a usage chunk the upstream did not send, or no finish
        # chunk is held to carry it: a usage chunk of the gateway's, after the finish.
        head = _chunk_head(data_of(held) or b"{}") if held is not None else _ChunkHead()
        self._sent += 1 if held is not None else 0
        return (held or b"") + self._usage_frame(head, u, estimated)

    def _usage_frame(self, head: _ChunkHead, usage: bytes, estimated: bool) -> bytes:
        return b'data: {"id":%s,"object":%s,"created":%d,"model":%s,"choices":[],"usage":%s,"extra_fields":%s}\n\n' % (
            _encode(head.id),
            _encode(head.object),
            head.created,
            _encode(head.model),
            usage,
            self._finish.extra(self._sent, estimated, self.last_data),
        )

    def flush_held(self) -> bytes:
        """At an abnormal end: the held chunk as it came (no [DONE] will follow)."""
        held, self._held = self._held, None
        return held or b""
