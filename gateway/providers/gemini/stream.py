"""Gemini ``streamGenerateContent?alt=sse`` frames -> OpenAI chat completion chunks.

Each Gemini frame is a whole GenerateContentResponse holding the new parts; usage is
cumulative and present on most frames (the last one counts). Gemini has no terminal
event: the stream ends at EOF, so the usage chunk and ``[DONE]`` come from ``close``.
"""

from __future__ import annotations

import os

import msgspec
from msgspec import UNSET, UnsetType

from gateway.errors import UpstreamProtocolError
from gateway.providers.gemini import chat_wire as oa
from gateway.providers.gemini import convert
from gateway.providers.gemini import wire as g

_DONE = b"data: [DONE]\n\n"
# The common frame, one text part for candidate 0, as the API writes it: read from its
# bytes when it is exactly HEAD STRING END REST, STRING decodes as one JSON string and
# "{" '"' REST as a frame holding no candidates and no error (END ends with the quote
# opening REST's first field). Any other frame is decoded whole, as is one of these out
# of the common state.
_TEXT_HEAD = b'data: {"candidates": [{"content": {"parts": [{"text": '
_TEXT_END = b'"}],"role": "model"},"index": 0}],"'
_OPEN = b'{"index":0,"delta":{"content":'
_string = msgspec.json.Decoder(str).decode
_TAIL = b"]}\n\n"
_PLAIN_TAIL = b'},"finish_reason":null}]}\n\n'
_EMPTY_DELTA = oa.Delta()


class StreamError(UpstreamProtocolError):
    """Gemini sent ``{"error": {...}}`` in the middle of a stream."""

    def __init__(self, message: str, *, gemini_code: int | None, gemini_status: str | None) -> None:
        super().__init__(message)
        self.gemini_code = gemini_code
        self.gemini_status = gemini_status


def payload_of(frame: bytes) -> bytes | None:
    """The ``data`` of one frame (without its blank line); None when it has none."""
    if frame.startswith(b"data: ") and b"\n" not in frame:
        return frame[6:]
    data = [line[5:].removeprefix(b" ") for line in frame.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(data) if data else None


class ChatStream:
    __slots__ = (
        "_calls",
        "_closed",
        "_common",
        "_created",
        "_finished",
        "_model",
        "_n",
        "_prefix",
        "_started",
        "_token",
        "_usage",
        "done",
    )

    def __init__(self, *, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._prefix = b""  # the chunk head up to "choices":[, built from the first frame
        self._token = ""
        self._started: set[int] = set()  # candidates whose role chunk went out
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> its tool calls so far
        self._n = 0  # tool calls in the whole response, for generated ids
        self._usage: g.UsageMetadata | None = None
        self._closed = False
        self._common = False  # candidate 0 started, not finished: the common frame's state
        self.done = False

    def feed(self, frames: bytes) -> bytes:
        if self._common and frames.startswith(_TEXT_HEAD):
            chunk = self._text(frames)
            if chunk:
                return chunk
        out: list[bytes] = []
        for frame in frames.split(b"\n\n"):
            payload = payload_of(frame) if frame else None
            if payload is None or payload == b"[DONE]":
                continue
            try:
                r = g.decode_frame(payload)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise UpstreamProtocolError(
                    f"gemini upstream sent a stream frame that is not a response: {e}"
                ) from None
            if isinstance(r.error, g.Status):
                err = r.error
                code = err.code if isinstance(err.code, int) else None
                status = err.status if isinstance(err.status, str) else None
                raise StreamError(
                    f"gemini upstream stream error {code} {status}: {err.message}",
                    gemini_code=code,
                    gemini_status=status,
                )
            self._frame(r, out)
            self._common = 0 in self._started and 0 not in self._finished
        return b"".join(out)

    def _text(self, region: bytes) -> bytes:
        """The chunk of a region that is one common frame, as ``_frame`` would make it;
        empty for any other region."""
        at = region.find(_TEXT_END, len(_TEXT_HEAD))
        # One line: a second line would not be the frame's data.
        if at < 0 or region.find(b"\n", at) != len(region) - 2 or not region.endswith(b"\n\n"):
            return b""
        try:
            text = _string(region[len(_TEXT_HEAD) : at + 1])
            # A second frame in the region fails here: one object, then whitespace only.
            r = g.decode_frame(b"{" + region[at + len(_TEXT_END) - 1 :])
        except msgspec.DecodeError:
            return b""
        if not text or r.candidates is not UNSET or r.error is not UNSET:
            return b""
        if isinstance(r.usageMetadata, g.UsageMetadata):
            self._usage = r.usageMetadata
        return self._prefix + _OPEN + oa.encode(text) + _PLAIN_TAIL

    def _frame(self, r: g.StreamFrame, out: list[bytes]) -> None:
        if not self._prefix:
            rid = r.responseId if isinstance(r.responseId, str) and r.responseId else None
            self._token = convert.id_token(rid)
            chunk_id = rid or "chatcmpl-" + os.urandom(12).hex()
            self._prefix = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,"choices":[' % (
                oa.encode(chunk_id),
                self._created,
                oa.encode(self._model),
            )
        if isinstance(r.usageMetadata, g.UsageMetadata):
            self._usage = r.usageMetadata
        if not r.candidates:
            blocked = isinstance(r.promptFeedback, g.PromptFeedback) and r.promptFeedback.blockReason is not UNSET
            if blocked and 0 not in self._finished:
                self._finish(0, "content_filter", out)
            return
        for pos, c in enumerate(r.candidates):
            idx = c.index if isinstance(c.index, int) else pos
            if idx in self._finished:
                continue
            if isinstance(c.content, g.Content):
                lp = (
                    convert.openai_logprobs(c.logprobsResult)
                    if isinstance(c.logprobsResult, g.LogprobsResult)
                    else None
                )
                self._parts(idx, c.content.parts, lp, out)
            if isinstance(c.finishReason, str):
                reason = convert.finish_reason(c.finishReason, has_calls=self._calls.get(idx, 0) > 0)
                self._finish(idx, reason, out)

    def _parts(self, idx: int, parts: list[g.Part], lp: oa.Logprobs | None, out: list[bytes]) -> None:
        for p in parts:
            if isinstance(p.functionCall, g.FunctionCall):
                self._call(idx, p.functionCall, p.thoughtSignature, out)
            elif isinstance(p.text, str) and p.text:
                if p.thought is True:
                    self._emit(idx, oa.Delta(reasoning=p.text), out)
                elif lp is None and idx in self._started:
                    # The common chunk: spliced, one encode of the text.
                    head = b'{"index":%d,"delta":{"content":' % idx
                    out.append(self._prefix + head + oa.encode(p.text) + _PLAIN_TAIL)
                else:
                    self._emit(idx, oa.Delta(content=p.text), out, lp)
                    lp = None

    def _call(self, idx: int, fc: g.FunctionCall, sig: str | UnsetType, out: list[bytes]) -> None:
        k = self._calls.get(idx, 0)
        self._calls[idx] = k + 1
        call_id = fc.id if isinstance(fc.id, str) and fc.id else convert.call_id(self._token, self._n)
        self._n += 1
        head = oa.DeltaToolCall(
            index=k,
            id=convert.with_signature(call_id, sig if isinstance(sig, str) else None),
            type="function",
            function=oa.DeltaFunction(name=fc.name, arguments=""),
        )
        self._emit(idx, oa.Delta(tool_calls=[head]), out)
        args = oa.encode(fc.args if isinstance(fc.args, dict) else {}).decode()
        self._emit(
            idx, oa.Delta(tool_calls=[oa.DeltaToolCall(index=k, function=oa.DeltaFunction(arguments=args))]), out
        )

    def _emit(self, idx: int, delta: oa.Delta, out: list[bytes], lp: oa.Logprobs | None = None) -> None:
        if idx not in self._started:
            self._started.add(idx)
            delta.role = "assistant"
        choice = oa.ChunkChoice(index=idx, delta=delta, logprobs=lp or UNSET, finish_reason=None)
        out.append(self._prefix + oa.encode(choice) + _TAIL)

    def _finish(self, idx: int, reason: str, out: list[bytes]) -> None:
        if idx not in self._started:
            self._emit(idx, oa.Delta(content=""), out)
        self._finished.add(idx)
        self.done = True
        out.append(
            self._prefix + oa.encode(oa.ChunkChoice(index=idx, delta=_EMPTY_DELTA, finish_reason=reason)) + _TAIL
        )

    def close(self) -> bytes:
        if not self.done or self._closed:
            return b""
        self._closed = True
        out: list[bytes] = []
        for idx in sorted(self._started - self._finished):
            self._finish(idx, "stop", out)
        if self._usage is not None:
            usage = oa.encode(convert.openai_usage(self._usage))
            out.append(self._prefix + b'],"usage":' + usage + b"}\n\n")
        out.append(_DONE)
        return b"".join(out)
