"""OpenAI chat completion chunks -> Gemini ``streamGenerateContent?alt=sse`` frames, for
a google-genai client whose request went to any provider.

Text and thoughts go out as they arrive. A tool call is streamed by OpenAI as argument
fragments but is one whole ``functionCall`` part in Gemini, so calls are gathered and
sent with the choice's finish. The finishing frame is held until the usage chunk (or
``[DONE]``) so that, as Gemini does, the last frame carries ``usageMetadata``.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from gateway.errors import UpstreamProtocolError
from gateway.providers.chunktext import TextChunks
from gateway.providers.gemini import chat_wire as oa
from gateway.providers.gemini import convert
from gateway.providers.gemini import wire as g
from gateway.providers.gemini.inbound import function_call_part
from gateway.providers.gemini.stream import payload_of

# The API ends SSE events with CRLF; the google-genai parser takes either.
_END = b"\r\n\r\n"
_TEXT_HEAD = b'data: {"candidates":[{"content":{"parts":[{"text":'


class GenerateStream:
    __slots__ = ("_calls", "_id", "_pending", "_plain", "_text_tail", "_version")

    def __init__(self) -> None:
        self._id = ""
        self._version = ""
        self._text_tail = b""  # closes a one-text-part frame, built from the first chunk
        self._calls: dict[tuple[int, int], list[str]] = {}  # (choice, tool index) -> [id, name, *fragments]
        self._pending: list[g.Candidate] = []  # finished candidates, held for the usage
        self._plain = TextChunks()

    def feed(self, frames: bytes) -> bytes:
        if self._text_tail and not self._pending:
            text = self._plain.frame_text(frames)
            if text is not None:  # one ordinary content chunk, read without decoding it
                return _TEXT_HEAD + g.encode(text) + self._text_tail
        out: list[bytes] = []
        for frame in frames.split(b"\n\n"):
            payload = payload_of(frame) if frame else None
            if payload is None:
                continue
            if payload == b"[DONE]":
                self._flush(out, UNSET)
                continue
            text = self._plain.text(payload) if self._text_tail and not self._pending else None
            if text is not None:  # the common chunk, read without decoding it
                out.append(_TEXT_HEAD + g.encode(text) + self._text_tail)
                continue
            try:
                chunk = oa.decode_chunk(payload)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise UpstreamProtocolError(
                    f"gemini dialect: a stream frame is not a chat completion chunk: {e}"
                ) from None
            self._plain.learn(payload)
            if chunk.error is not None:
                self._flush(out, UNSET)
                out.append(_error_frame(chunk.error))
                continue
            if not self._text_tail:
                self._id, self._version = chunk.id, chunk.model
                self._text_tail = b'}],"role":"model"},"index":0}],"modelVersion":%s,"responseId":%s}%s' % (
                    g.encode(chunk.model),
                    g.encode(chunk.id),
                    _END,
                )
            self._chunk(chunk, out)
        return b"".join(out)

    def _chunk(self, chunk: oa.InChunk, out: list[bytes]) -> None:
        live: list[g.Candidate] = []
        text = _plain_text(chunk)
        if text is not None and not self._pending:
            out.append(_TEXT_HEAD + g.encode(text) + self._text_tail)  # the common chunk
            return
        for ch in chunk.choices:
            parts = self._parts(ch)
            if ch.finish_reason is not None:
                parts.extend(self._finished_calls(ch.index))
                cand = self._candidate(ch, parts)
                cand.finishReason = convert.gemini_finish(ch.finish_reason)
                self._pending.append(cand)
            elif parts:
                live.append(self._candidate(ch, parts))
        if live:
            self._flush(out, UNSET)
            out.append(self._frame(g.GenerateContentResponse(candidates=live)))
        if chunk.usage is not None:
            self._flush(out, convert.gemini_usage(chunk.usage), always=True)

    def _parts(self, ch: oa.InChoice) -> list[g.Part]:
        d = ch.delta
        if d is None:
            return []
        parts = []
        reasoning = d.reasoning or d.reasoning_content
        if reasoning:
            parts.append(g.Part(text=reasoning, thought=True))
        for text in (d.content, d.refusal):
            if text:
                parts.append(g.Part(text=text))
        for tc in d.tool_calls or ():
            call = self._calls.setdefault((ch.index, tc.index), ["", ""])
            if tc.id:
                call[0] = tc.id
            if tc.function is not None:
                if tc.function.name:
                    call[1] = tc.function.name
                if tc.function.arguments:
                    call.append(tc.function.arguments)
        return parts

    def _finished_calls(self, choice: int) -> list[g.Part]:
        keys = sorted(k for k in self._calls if k[0] == choice)
        return [function_call_part(c[0], c[1], "".join(c[2:])) for c in (self._calls.pop(k) for k in keys)]

    @staticmethod
    def _candidate(ch: oa.InChoice, parts: list[g.Part]) -> g.Candidate:
        cand = g.Candidate(content=g.Content(parts=parts, role="model"), index=ch.index)
        if ch.logprobs is not None:
            cand.logprobsResult = convert.gemini_logprobs(ch.logprobs) or UNSET
        return cand

    def _frame(self, r: g.GenerateContentResponse) -> bytes:
        r.modelVersion, r.responseId = self._version, self._id
        return b"data: " + g.encode(r) + _END

    def _flush(self, out: list[bytes], usage: g.UsageMetadata | UnsetType, *, always: bool = False) -> None:
        if self._pending or always:
            out.append(self._frame(g.GenerateContentResponse(candidates=self._pending or UNSET, usageMetadata=usage)))
            self._pending = []


def _plain_text(chunk: oa.InChunk) -> str | None:
    """The text of a chunk that is only text for choice 0, else None."""
    if len(chunk.choices) != 1 or chunk.usage is not None:
        return None
    ch = chunk.choices[0]
    d = ch.delta
    if ch.index or ch.finish_reason is not None or ch.logprobs is not None or d is None or not d.content:
        return None
    if d.reasoning or d.reasoning_content or d.refusal or d.tool_calls:
        return None
    return d.content


def _error_frame(e: oa.InError) -> bytes:
    status = convert.status_of_type(e.type, e.code)
    body = g.ErrorBody(error=g.Status(code=status, message=e.message, status=convert.rpc_status(status)))
    return b"data: " + g.encode(body) + _END
