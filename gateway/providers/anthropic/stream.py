"""An Anthropic Messages stream -> OpenAI chat.completion.chunk frames.

Per frame: one decode of its JSON into one catch-all ``Event`` Struct, and for a
content delta one encode of the text between two byte templates built once per stream
(at ``message_start``), so an ordinary chunk ends ``"finish_reason":null}]}\\n\\n`` as
the relay's fast path expects.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from gateway.errors import UpstreamProtocolError
from gateway.providers.anthropic import usage as _usage
from gateway.providers.anthropic.errors import DIALECT, StreamError
from gateway.providers.anthropic.schema import Event, Usage

_encode = msgspec.json.Encoder().encode
_event = msgspec.json.Decoder(Event).decode

_SEP = b"\n\n"
_DONE = b"data: [DONE]\n\n"
_OPEN = b'{"index":0,"delta":'
_PLAIN_END = b',"finish_reason":null}]}\n\n'
# The common event, a text delta, as the API writes it: a region that is exactly
# TEXT_HEAD INDEX TEXT_MID STRING TEXT_END, on one data line, INDEX a JSON integer and
# STRING one JSON string, is read from its bytes. Any other is decoded whole.
_TEXT_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_MID = b',"delta":{"type":"text_delta","text":'
_TEXT_END = b"}}\n\n"
_TEXT_CLOSE = b"}" + _PLAIN_END
_string = msgspec.json.Decoder(str).decode


def _text_delta(region: bytes) -> str | None:
    """The text of a region that is one text_delta event in the common spelling, else None."""
    at = region.find(_TEXT_MID, len(_TEXT_HEAD))
    index = region[len(_TEXT_HEAD) : at]
    if at < 0 or not index.isdigit() or len(index) > 9 or (index[0] == 0x30 and len(index) > 1):
        return None
    end = len(region) - len(_TEXT_END)
    if not region.endswith(_TEXT_END) or region.find(b"\n", at) != end + 2:
        return None
    try:
        return _string(region[at + len(_TEXT_MID) : end])
    except msgspec.DecodeError:
        return None


def _data(frame: bytes) -> bytes | None:
    """The ``data:`` payload of one frame (Anthropic sends ``event:`` then ``data:``)."""
    start = frame.find(b"data:")
    if start < 0:
        return None
    end = frame.find(b"\n", start)
    payload = frame[start + 5 : end if end >= 0 else len(frame)]
    return payload[1:] if payload.startswith(b" ") else payload


class ChatStream:
    """Feed it whole Anthropic SSE frames; it returns OpenAI SSE frames."""

    __slots__ = (
        "_args_sent",
        "_created",
        "_finished",
        "_head",
        "_id",
        "_model",
        "_text_open",
        "_tools",
        "_usage",
        "done",
    )

    def __init__(self, *, created: int) -> None:
        self._created = created
        self._head = b""  # b'data: {"id":...,"choices":[' once message_start is seen
        self._text_open = b""  # a content chunk up to its text, with the head
        self._id = ""
        self._model = ""
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._args_sent: set[int] = set()  # tool calls whose arguments have begun
        self._usage = Usage()
        self._finished = False
        self.done = False

    def feed(self, frames: bytes) -> bytes:
        if self._text_open and not self.done and frames.startswith(_TEXT_HEAD):
            text = _text_delta(frames)
            if text is not None:  # one text_delta event, read without decoding it
                return self._text_open + _encode(text) + _TEXT_CLOSE
        out: list[bytes] = []
        for frame in frames.split(_SEP)[:-1]:
            data = _data(frame)
            if data is None or self.done:
                continue
            try:
                event = _event(data)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise UpstreamProtocolError(f"{DIALECT} upstream sent a stream event that is not valid: {e}") from None
            self._on(event, out)
        return b"".join(out)

    def close(self) -> bytes:
        # Nothing is held back between frames: a cut stream ends where it was cut.
        return b""

    def _on(self, event: Event, out: list[bytes]) -> None:
        kind = event.type
        if kind == "content_block_delta":
            self._on_delta(event, out)
        elif kind == "content_block_start":
            self._on_block_start(event, out)
        elif kind == "content_block_stop":
            self._on_block_stop(event, out)
        elif kind == "message_start":
            self._on_start(event, out)
        elif kind == "message_delta":
            self._on_message_delta(event, out)
        elif kind == "message_stop":
            self._finish(None, out)
            out.append(self._usage_chunk())
            out.append(_DONE)
            self.done = True
        elif kind == "error":
            err = event.error
            if err is UNSET:
                raise StreamError("(no detail)", "api_error")
            raise StreamError(err.message, err.type)
        # ping, and event types added after this was written, carry nothing to relay.

    def _chunk(self, delta: bytes) -> bytes:
        if not self._head:
            raise UpstreamProtocolError(f"{DIALECT} upstream sent content before message_start")
        return self._head + _OPEN + delta + _PLAIN_END

    def _on_start(self, event: Event, out: list[bytes]) -> None:
        msg = event.message
        if msg is UNSET:
            raise UpstreamProtocolError(f"{DIALECT} upstream sent message_start without a message")
        self._id, self._model = msg.id, msg.model
        if msg.usage is not None:
            self._usage = msg.usage
        self._head = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,"choices":[' % (
            _encode(msg.id),
            self._created,
            _encode(msg.model),
        )
        self._text_open = self._head + _OPEN + b'{"content":'
        out.append(self._chunk(b'{"role":"assistant","content":""}'))

    def _on_block_start(self, event: Event, out: list[bytes]) -> None:
        block = event.content_block
        if block is UNSET:
            raise UpstreamProtocolError(f"{DIALECT} upstream sent content_block_start without a content_block")
        if block.type == "tool_use":
            if block.id is UNSET or block.name is UNSET:
                raise UpstreamProtocolError(f"{DIALECT} upstream sent a tool_use block without id or name")
            index = self._tools[event.index] = len(self._tools)
            out.append(
                self._chunk(
                    b'{"tool_calls":[{"index":%d,"id":%s,"type":"function","function":{"name":%s,"arguments":""}}]}'
                    % (index, _encode(block.id), _encode(block.name))
                )
            )
        elif block.type == "text" and block.text:
            out.append(self._chunk(b'{"content":%s}' % _encode(block.text)))
        elif block.type == "thinking" and block.thinking:
            out.append(self._chunk(b'{"reasoning":%s}' % _encode(block.thinking)))

    def _on_delta(self, event: Event, out: list[bytes]) -> None:
        delta = event.delta
        if delta is UNSET:
            raise UpstreamProtocolError(f"{DIALECT} upstream sent content_block_delta without a delta")
        kind = delta.type
        if kind == "text_delta" and delta.text is not UNSET:
            out.append(self._chunk(b'{"content":' + _encode(delta.text) + b"}"))
        elif kind == "input_json_delta" and delta.partial_json:
            index = self._tools.get(event.index)
            if index is None:
                raise UpstreamProtocolError(f"{DIALECT} upstream sent input_json_delta outside a tool_use block")
            self._args_sent.add(index)
            out.append(
                self._chunk(
                    b'{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}' % (index, _encode(delta.partial_json))
                )
            )
        elif kind == "thinking_delta" and delta.thinking is not UNSET:
            out.append(self._chunk(b'{"reasoning":' + _encode(delta.thinking) + b"}"))
        elif kind == "signature_delta" and delta.signature:
            out.append(self._chunk(b'{"reasoning_signature":' + _encode(delta.signature) + b"}"))

    def _on_block_stop(self, event: Event, out: list[bytes]) -> None:
        index = self._tools.get(event.index)
        if index is not None and index not in self._args_sent:
            # A call without arguments: OpenAI clients parse "{}", not "".
            self._args_sent.add(index)
            out.append(self._chunk(b'{"tool_calls":[{"index":%d,"function":{"arguments":"{}"}}]}' % index))

    def _on_message_delta(self, event: Event, out: list[bytes]) -> None:
        u = event.usage
        if u is not UNSET:
            # message_delta's counts are cumulative; absent ones keep message_start's.
            mine = self._usage
            for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                value = getattr(u, name)
                if value is not None:
                    setattr(mine, name, value)
            if u.output_tokens_details is not None:
                mine.output_tokens_details = u.output_tokens_details
        self._finish(event.delta.stop_reason if event.delta is not UNSET else None, out)

    def _finish(self, stop_reason: str | None, out: list[bytes]) -> None:
        if self._finished:
            return
        self._finished = True
        reason = _usage.finish_reason(stop_reason)
        if not self._head:
            raise UpstreamProtocolError(f"{DIALECT} upstream ended a message it never started")
        out.append(self._head + _OPEN + b'{},"finish_reason":"' + reason.encode() + b'"}]}\n\n')

    def _usage_chunk(self) -> bytes:
        usage = _encode(_usage.from_anthropic(self._usage))
        return (
            b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,"choices":[],"usage":%s}\n\n'
            % (
                _encode(self._id),
                self._created,
                _encode(self._model),
                usage,
            )
        )
