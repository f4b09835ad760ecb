"""The pipeline's OpenAI chunks -> an Anthropic Messages event stream.

OpenAI reports usage only in the last chunk, so ``message_start`` carries zero counts
and ``message_delta`` (sent at ``[DONE]``) the whole usage: its counts are cumulative
and the SDKs take its ``input_tokens`` over message_start's.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from gateway.providers.anthropic import usage as _usage
from gateway.providers.anthropic.errors import decode_upstream, stream_error_type
from gateway.providers.anthropic.schema import ChatMessage, ChatUsage, Completion, ToolCall
from gateway.providers.chunktext import TextChunks

_encode = msgspec.json.Encoder().encode
_completion = msgspec.json.Decoder(Completion)

_SEP = b"\n\n"
_DONE = b"[DONE]"
_TEXT = b"text"
_THINKING = b"thinking"
_TOOL = b"tool_use"
_STARTS = {
    _TEXT: b'{"type":"text","text":""}',
    _THINKING: b'{"type":"thinking","thinking":"","signature":""}',
}
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


class MessagesStream:
    """Feed it whole OpenAI SSE frames; it returns Anthropic SSE events."""

    __slots__ = ("_index", "_open", "_plain", "_started", "_stop", "_text_head", "_tools", "_usage", "done")

    def __init__(self) -> None:
        self._started = False
        self._index = -1  # the Anthropic index of the last block started
        self._open: bytes | None = None  # kind of the block still open
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._stop: str | None = None
        self._usage: ChatUsage | None = None
        self._plain = TextChunks()
        self._text_head = b""  # the open text block's content_block_delta up to its text
        self.done = False

    def feed(self, frames: bytes) -> bytes:
        if self._open == _TEXT and not self.done:
            text = self._plain.frame_text(frames)
            if text is not None:  # one ordinary content chunk, read without decoding it
                return self._text_head + _encode(text) + b"}}\n\n"
        out: list[bytes] = []
        for frame in frames.split(_SEP)[:-1]:
            if self.done or not frame.startswith(b"data:"):
                continue
            data = frame[5:].lstrip(b" ")
            if data == _DONE:
                self._end(out)
                continue
            text = self._plain.text(data) if self._started else None
            if text is not None:  # the common chunk, read without decoding it
                self._text(text, out)
                continue
            chunk = decode_upstream(_completion, data, what="an OpenAI chat.completion.chunk")
            self._plain.learn(data)
            err = chunk.error
            if err is not UNSET and err is not None:
                body = b'{"type":"error","error":{"type":"%s","message":%s}}' % (
                    stream_error_type(err.type).encode(),
                    _encode(err.message),
                )
                out.append(_event(b"error", body))
                self.done = True
                continue
            if not self._started:
                self._start(chunk, out)
            for choice in chunk.choices[:1]:
                if choice.delta is not UNSET:
                    self._delta(choice.delta, out)
                if choice.finish_reason:
                    self._close(out)
                    self._stop = choice.finish_reason
            if chunk.usage is not None:
                self._usage = chunk.usage
        return b"".join(out)

    def _start(self, chunk: Completion, out: list[bytes]) -> None:
        self._started = True
        message = b'{"id":%s,"type":"message","role":"assistant","model":%s,"content":[],' % (
            _encode(chunk.id),
            _encode(chunk.model),
        )
        tail = b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}'
        out.append(_event(b"message_start", b'{"type":"message_start","message":' + message + tail + b"}"))

    def _delta(self, delta: ChatMessage, out: list[bytes]) -> None:
        thinking = delta.reasoning or delta.reasoning_content
        if thinking:
            self._block(_THINKING, out)
            out.append(self._block_delta(b'{"type":"thinking_delta","thinking":%s}' % _encode(thinking)))
        if delta.reasoning_signature:
            self._block(_THINKING, out)
            out.append(
                self._block_delta(b'{"type":"signature_delta","signature":%s}' % _encode(delta.reasoning_signature))
            )
        text = delta.content if isinstance(delta.content, str) else None
        if not text and isinstance(delta.refusal, str):
            text = delta.refusal
        if text:
            self._text(text, out)
        for k, call in enumerate(delta.tool_calls or ()):
            self._tool_call(call, k, out)

    def _text(self, text: str, out: list[bytes]) -> None:
        if self._open != _TEXT:
            self._block(_TEXT, out)
            self._text_head = (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
                b'"delta":{"type":"text_delta","text":' % self._index
            )
        out.append(self._text_head + _encode(text) + b"}}\n\n")

    def _block_delta(self, delta: bytes, index: int | None = None) -> bytes:
        at = self._index if index is None else index
        return _event(b"content_block_delta", b'{"type":"content_block_delta","index":%d,"delta":%s}' % (at, delta))

    def _block(self, kind: bytes, out: list[bytes]) -> None:
        """Make a block of ``kind`` the open one (text and thinking blocks)."""
        if self._open == kind:
            return
        self._close(out)
        self._index += 1
        self._open = kind
        start = b'{"type":"content_block_start","index":%d,"content_block":' % self._index
        out.append(_event(b"content_block_start", start + _STARTS[kind] + b"}"))

    def _tool_call(self, call: ToolCall, position: int, out: list[bytes]) -> None:
        key = call.index if call.index is not UNSET else position
        fn = call.function or None
        index = self._tools.get(key)
        # A new call is a new index; some servers repeat the id on every fragment.
        if index is None:
            self._close(out)
            self._index += 1
            index = self._tools[key] = self._index
            self._open = _TOOL
            name = fn.name if fn and fn.name is not UNSET else ""
            block = b'{"type":"tool_use","id":%s,"name":%s,"input":{}}' % (
                _encode(call.id or f"toolu_{key}"),
                _encode(name),
            )
            start = b'{"type":"content_block_start","index":%d,"content_block":' % index
            out.append(_event(b"content_block_start", start + block + b"}"))
        args = fn.arguments if fn else None
        if args:
            delta = b'{"type":"input_json_delta","partial_json":' + _encode(args) + b"}"
            out.append(self._block_delta(delta, index))

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            self._open = None
            body = b'{"type":"content_block_stop","index":%d}' % self._index
            out.append(_event(b"content_block_stop", body))

    def _end(self, out: list[bytes]) -> None:
        self.done = True
        if not self._started:
            self._start(Completion(), out)
        self._close(out)
        usage = _encode(_usage.to_anthropic(self._usage))
        reason = _usage.stop_reason(self._stop).encode()
        body = b'{"type":"message_delta","delta":{"stop_reason":"%s","stop_sequence":null},"usage":%s}' % (
            reason,
            usage,
        )
        out.append(_event(b"message_delta", body))
        out.append(_MESSAGE_STOP)
