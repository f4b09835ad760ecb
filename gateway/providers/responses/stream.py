"""The pipeline's OpenAI chunk frames -> the Responses API's event stream.

Events, each with the next ``sequence_number``: ``response.created`` and
``response.in_progress`` first; the reasoning's reasoning item, before what follows
it (``output_item.added``, ``reasoning_summary_part.added``,
``reasoning_summary_text.delta``..., ``reasoning_summary_text.done``,
``reasoning_summary_part.done``, ``output_item.done``); a text answer's message item (``output_item.added``,
``content_part.added``, ``output_text.delta``..., ``output_text.done``,
``content_part.done``, ``output_item.done``); a tool call's function_call item
(``output_item.added``, ``function_call_arguments.delta``..., ``.done``,
``output_item.done``); at the chat stream's ``[DONE]``, ``response.completed`` (or
``response.incomplete``) carrying the whole Response, its usage and ``extra_fields``
read from the final chunk. An error frame ends it with an ``error`` event and
``response.failed``. No ``[DONE]``: the Responses API does not send one.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, Raw, UnsetType

from gateway.errors import UpstreamProtocolError
from gateway.providers.chunktext import TextChunks
from gateway.providers.responses import answer as _answer
from gateway.providers.responses.wire import (
    ChatError,
    ChatLogprobs,
    ChatMessage,
    ChatToolCall,
    ChatUsage,
    Completion,
    FunctionCallItem,
    MessageItem,
    OutputItem,
    OutputText,
    Refusal,
    ResponseError,
    TokenLogprob,
)

_encode = msgspec.json.Encoder().encode
_completion = msgspec.json.Decoder(Completion)

_SEP = b"\n\n"
_DONE = b"[DONE]"
_EMPTY_TEXT = b'{"type":"output_text","text":"","annotations":[],"logprobs":[]}'
_EMPTY_SUMMARY = b',"part":{"type":"summary_text","text":""}'
# A gateway error type -> the ResponseError code the SDK knows (any other: server_error).
_CODES = {"rate_limit_error": "rate_limit_exceeded", "invalid_request_error": "invalid_prompt"}


class _Text:
    """The message item being streamed."""

    __slots__ = ("id", "index", "logprobs", "parts", "where")

    def __init__(self, index: int) -> None:
        self.id = _answer.new_id("msg_")
        self.index = index
        self.parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []  # the deltas', when the chunks carried them
        self.where = b'"item_id":"%s","output_index":%d,"content_index":0' % (self.id.encode(), index)


class _Reasoning:
    """The reasoning item being streamed: its summary text and signature."""

    __slots__ = ("id", "index", "parts", "signature")

    def __init__(self, index: int) -> None:
        self.id = _answer.new_id("rs_")
        self.index = index
        self.parts: list[str] = []
        self.signature: list[str] = []


class _Call:
    """A function_call item being streamed."""

    __slots__ = ("args", "call_id", "id", "index", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.id = _answer.new_id("fc_")
        self.index = index
        self.call_id = call_id
        self.name = name
        self.args: list[str] = []


class ResponsesStream:
    """Feed it whole OpenAI SSE frames; it returns Responses SSE events."""

    __slots__ = (
        "_calls",
        "_created",
        "_echo",
        "_extra",
        "_finish",
        "_id",
        "_output",
        "_plain",
        "_reasoning",
        "_refusal",
        "_seq",
        "_started",
        "_text",
        "_usage",
        "done",
        "final",
    )

    def __init__(self, *, request: bytes) -> None:
        self._echo = _answer.echo(request)
        self._id = _answer.new_id("resp_")
        self._created = 0
        self._seq = 0
        self._started = False
        self._text: _Text | None = None  # the open message item
        self._reasoning: _Reasoning | None = None  # the open reasoning item
        self._refusal: list[str] = []
        self._calls: dict[int, _Call] = {}  # open function_call items by chat tool call index
        self._output: list[OutputItem | None] = []  # finished items by output index
        self._finish: str | None = None
        self._usage: ChatUsage | None = None
        self._extra: Raw | UnsetType = UNSET
        self._plain = TextChunks()
        self.done = False
        # The finished Response (completed or incomplete), for a store to keep.
        self.final: bytes | None = None

    def _event(self, kind: bytes, body: bytes, out: list[bytes]) -> None:
        """``body``: the event's fields after ``type`` and ``sequence_number``."""
        out.append(b'event: %s\ndata: {"type":"%s","sequence_number":%d,%s}\n\n' % (kind, kind, self._seq, body))
        self._seq += 1

    def _lifecycle(
        self,
        kind: bytes,
        status: str,
        out: list[bytes],
        *,
        usage: ChatUsage | None = None,
        extra: Raw | UnsetType = UNSET,
        error: ResponseError | None = None,
        incomplete: str | None = None,
    ) -> None:
        r = _answer.response(
            self._echo,
            id=self._id,
            created=self._created,
            status=status,
            output=[o for o in self._output if o is not None],
            usage=_answer.usage(usage),
            extra=extra,
            error=error,
            incomplete=incomplete,
        )
        encoded = _encode(r)
        if status in ("completed", "incomplete"):
            self.final = encoded
        self._event(kind, b'"response":' + encoded, out)

    def feed(self, frames: bytes) -> bytes:
        out: list[bytes] = []
        if self._started and not self.done:
            text = self._plain.frame_text(frames)
            if text is not None:  # one ordinary content chunk, read without decoding it
                self._text_delta(text, None, out)
                return out[0] if len(out) == 1 else b"".join(out)
        for frame in frames.split(_SEP)[:-1]:
            if self.done or not frame.startswith(b"data:"):
                continue
            data = frame[5:].lstrip(b" ")
            if data == _DONE:
                self._end(out)
                continue
            text = self._plain.text(data) if self._started else None
            if text is not None:  # the common chunk, read without decoding it
                self._text_delta(text, None, out)
                continue
            try:
                chunk = _completion.decode(data)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise UpstreamProtocolError(
                    f"upstream sent an OpenAI chat.completion.chunk that is not valid: {e}"
                ) from None
            self._plain.learn(data)
            if not self._started:
                self._start(chunk.created, out)
            err = chunk.error
            if err is not UNSET and err is not None:
                self._fail(err, out)
                continue
            for choice in chunk.choices[:1]:
                if choice.delta is not UNSET:
                    self._delta(choice.delta, choice.logprobs, out)
                if choice.finish_reason:
                    self._finish = choice.finish_reason
                    self._close_all(out)
            if chunk.usage is not None:
                self._usage = chunk.usage
            if chunk.extra_fields is not UNSET:
                self._extra = chunk.extra_fields
        return b"".join(out)

    def _start(self, created: int, out: list[bytes]) -> None:
        self._started = True
        self._created = created
        self._lifecycle(b"response.created", "in_progress", out)
        self._lifecycle(b"response.in_progress", "in_progress", out)

    def _delta(self, delta: ChatMessage, logprobs: ChatLogprobs | None, out: list[bytes]) -> None:
        thought = delta.reasoning or delta.reasoning_content
        if thought:
            self._reasoning_delta(thought, out)
        if delta.reasoning_signature:
            self._open_reasoning(out).signature.append(delta.reasoning_signature)
        text = delta.content if isinstance(delta.content, str) else None
        if text:
            self._text_delta(text, logprobs, out)
        if delta.refusal:
            self._open_text(out)
            self._refusal.append(delta.refusal)
        for k, call in enumerate(delta.tool_calls or ()):
            self._call_delta(call, k, out)

    def _open_reasoning(self, out: list[bytes]) -> _Reasoning:
        thought = self._reasoning
        if thought is None:
            text, self._text = self._text, None
            if text is not None:  # reasoning after text: the text's item ends there
                self._close_text(text, "completed", out)
            thought = self._reasoning = _Reasoning(len(self._output))
            self._output.append(None)
            item = b'{"id":"%s","type":"reasoning","summary":[],"status":"in_progress"}' % thought.id.encode()
            self._event(b"response.output_item.added", b'"output_index":%d,"item":%s' % (thought.index, item), out)
        return thought

    def _reasoning_delta(self, delta: str, out: list[bytes]) -> None:
        thought = self._open_reasoning(out)
        where = b'"item_id":"%s","output_index":%d,"summary_index":0' % (thought.id.encode(), thought.index)
        if not thought.parts:
            self._event(b"response.reasoning_summary_part.added", where + _EMPTY_SUMMARY, out)
        thought.parts.append(delta)
        self._event(b"response.reasoning_summary_text.delta", where + b',"delta":' + _encode(delta), out)

    def _close_reasoning(self, item_status: str, out: list[bytes]) -> None:
        thought, self._reasoning = self._reasoning, None
        if thought is None:
            return
        whole = "".join(thought.parts)
        if thought.parts:
            where = b'"item_id":"%s","output_index":%d,"summary_index":0' % (thought.id.encode(), thought.index)
            self._event(b"response.reasoning_summary_text.done", where + b',"text":' + _encode(whole), out)
            part = b',"part":{"type":"summary_text","text":%s}' % _encode(whole)
            self._event(b"response.reasoning_summary_part.done", where + part, out)
        item = _answer.reasoning_item(
            id=thought.id, text=whole, signature="".join(thought.signature), item_status=item_status
        )
        self._output[thought.index] = item
        self._event(b"response.output_item.done", b'"output_index":%d,"item":%s' % (thought.index, _encode(item)), out)

    def _open_text(self, out: list[bytes]) -> _Text:
        text = self._text
        if text is None:
            self._close_reasoning("completed", out)  # the answer begins where reasoning ends
            text = self._text = _Text(len(self._output))
            self._output.append(None)
            item = (
                b'{"id":"%s","type":"message","status":"in_progress","role":"assistant","content":[]}'
                % text.id.encode()
            )
            self._event(b"response.output_item.added", b'"output_index":%d,"item":%s' % (text.index, item), out)
        return text

    def _text_delta(self, delta: str, chat_logprobs: ChatLogprobs | None, out: list[bytes]) -> None:
        text = self._open_text(out)
        where = text.where
        if not text.parts:
            self._event(b"response.content_part.added", where + b',"part":' + _EMPTY_TEXT, out)
        text.parts.append(delta)
        if chat_logprobs is None:
            out.append(
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
                b'%s,"delta":%s,"logprobs":[]}\n\n' % (self._seq, where, _encode(delta))
            )
            self._seq += 1
            return
        logprobs = _answer.logprobs(chat_logprobs)
        text.logprobs += logprobs
        body = b',"delta":%s,"logprobs":%s' % (_encode(delta), _encode(logprobs))
        self._event(b"response.output_text.delta", where + body, out)

    def _call_delta(self, call: ChatToolCall, position: int, out: list[bytes]) -> None:
        key = call.index if call.index is not UNSET else position
        fn = call.function
        open_ = self._calls.get(key)
        if open_ is None:
            self._close_reasoning("completed", out)
            text, self._text = self._text, None
            if text is not None:  # the text before the calls ends where they begin
                self._close_text(text, "completed", out)
            name = fn.name if fn is not None and isinstance(fn.name, str) else ""
            open_ = self._calls[key] = _Call(len(self._output), call.id or _answer.new_id("call_"), name)
            self._output.append(None)
            item = FunctionCallItem(id=open_.id, call_id=open_.call_id, name=name, arguments="", status="in_progress")
            self._event(
                b"response.output_item.added", b'"output_index":%d,"item":%s' % (open_.index, _encode(item)), out
            )
        args = fn.arguments if fn is not None else None
        if args:
            open_.args.append(args)
            body = b'"item_id":"%s","output_index":%d,"delta":%s' % (open_.id.encode(), open_.index, _encode(args))
            self._event(b"response.function_call_arguments.delta", body, out)

    def _close_all(self, out: list[bytes]) -> None:
        """Every open item done, in output order."""
        item_status = "incomplete" if _answer.INCOMPLETE.get(self._finish or "") else "completed"
        self._close_reasoning(item_status, out)  # still open: nothing came after it
        text, self._text = self._text, None
        if text is not None:
            self._close_text(text, item_status, out)
        for call in self._calls.values():
            args = "".join(call.args) or "{}"
            body = b'"item_id":"%s","output_index":%d,"arguments":%s' % (call.id.encode(), call.index, _encode(args))
            self._event(b"response.function_call_arguments.done", body, out)
            item = FunctionCallItem(
                id=call.id, call_id=call.call_id, name=call.name, arguments=args, status="completed"
            )
            self._output[call.index] = item
            self._event(b"response.output_item.done", b'"output_index":%d,"item":%s' % (call.index, _encode(item)), out)
        self._calls = {}

    def _close_text(self, text: _Text, item_status: str, out: list[bytes]) -> None:
        parts: list[OutputText | Refusal] = []
        if text.parts:
            whole = "".join(text.parts)
            where = b'"item_id":"%s","output_index":%d,"content_index":0' % (text.id.encode(), text.index)
            part = OutputText(text=whole, logprobs=text.logprobs)
            done = b',"text":%s,"logprobs":%s' % (_encode(whole), _encode(text.logprobs))
            self._event(b"response.output_text.done", where + done, out)
            self._event(b"response.content_part.done", where + b',"part":' + _encode(part), out)
            parts.append(part)
        if self._refusal:
            parts.append(Refusal(refusal="".join(self._refusal)))
            self._refusal = []
        item = MessageItem(id=text.id, status=item_status, content=parts)
        self._output[text.index] = item
        self._event(b"response.output_item.done", b'"output_index":%d,"item":%s' % (text.index, _encode(item)), out)

    def _end(self, out: list[bytes]) -> None:
        self.done = True
        if not self._started:
            self._start(0, out)
        self._close_all(out)
        state, reason = _answer.status(self._finish)
        kind = b"response.completed" if state == "completed" else b"response.incomplete"
        self._lifecycle(kind, state, out, usage=self._usage, extra=self._extra, incomplete=reason)

    def _fail(self, err: ChatError, out: list[bytes]) -> None:
        self.done = True
        code = err.code if isinstance(err.code, str) else None
        body = b'"code":%s,"message":%s,"param":%s' % (_encode(code), _encode(err.message), _encode(err.param))
        self._event(b"error", body, out)
        failure = ResponseError(code=_CODES.get(err.type or "", "server_error"), message=err.message)
        self._lifecycle(b"response.failed", "failed", out, error=failure, usage=self._usage)
