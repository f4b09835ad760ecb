"""The built-in fake LLM: deterministic text, realistic usage, settable size, pace and
faults. Served in-process for ``mock/...`` models and over HTTP by ``gateway mock``.

A request may override the configured behaviour with an extension field, which any
gateway forwards untouched (so load tests can steer the fake through a gateway):
``"mock": {"tokens": 50, "ttft_ms": 20, "itl_ms": 5, "fail_status": 429,
"reset_after": 3}``. ``max_tokens`` / ``max_completion_tokens`` cap the size.

Tool calls, as a model in an agent's tool loop makes them: a chat request that offers
``tools`` is answered with one call (``finish_reason: "tool_calls"``, ``content: null``)
unless ``tool_choice`` is ``"none"``, the last message is a ``tool`` result (then it
answers text, as a model does once it has its result) or ``"mock": {"tool_calls":
false}`` asks for text. The call is to the tool ``tool_choice`` names (not offered: 400,
param ``tool_choice``), else the first one; its ``arguments`` (a JSON string) are built
from the tool's parameters schema by ``providers.mock_schema``: every ``required``
parameter (every one when ``required`` is absent or the function is ``strict``), an
``enum``'s first value, else by type "mock", 1, 1.5, true, one array element, a filled
object, or null. Streamed as OpenAI does: the id and name first, then the arguments in 8-character
fragments. ``tools`` and ``tool_choice`` are decoded only when present, so a request
without them costs what it did before.

Structured output: a chat request whose ``response_format`` is ``json_schema`` (and that
gets no tool call) is answered with a JSON document valid against the schema (built as
tool arguments are), ``json_object`` with ``{"answer": "<words>"}``; whole whatever the
token cap, ``finish_reason: "stop"``, about 4 characters a completion token, streamed in
8-character content fragments. A schema the builder cannot satisfy is a 400 (param
``response_format.json_schema.schema``). ``response_format`` too is decoded only when
present.

Reasoning: a chat request with ``reasoning_effort`` is answered as a reasoning model
answers: ``REASONING_WORDS[effort]`` words of reasoning (deterministic, other words than
the answer's) in the message's ``reasoning`` with a ``reasoning_signature``, counted in
``completion_tokens`` and ``completion_tokens_details.reasoning_tokens`` and inside the
token cap (a cap smaller than the reasoning leaves no text: ``finish_reason: "length"``),
streamed first as ``delta.reasoning`` chunks, one a word.

Log probabilities: a chat request with ``logprobs: true`` (and ``top_logprobs``) gets
``logprobs.content`` for its text answer, deterministic per token
(``providers.mock_logprobs``), on the message and on each content chunk; a tool call's
answer has none, as OpenAI's.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from gateway.config import MockConfig
from gateway.errors import InvalidRequest
from gateway.providers import Endpoint
from gateway.providers.dialect import Dialect
from gateway.providers.mock_logprobs import MAX_TOP
from gateway.providers.mock_logprobs import content as logprobs_content
from gateway.providers.mock_logprobs import entry as logprob_entry
from gateway.providers.mock_schema import structured_content
from gateway.providers.mock_tools import ToolCall, tool_call

ENDPOINTS: frozenset[Endpoint] = frozenset({"chat", "text", "embeddings"})
# Served in-process (upstream.mock), in OpenAI's form: no URL, no key, no translation.
DIALECT = Dialect("mock", endpoints=ENDPOINTS)

_WORDS = [
    "the",
    "gateway",
    "relays",
    "every",
    "token",
    "as",
    "it",
    "arrives",
    "while",
    "counting",
    "what",
    "passes",
    "through",
    "a",
    "stream",
    "of",
    "synthetic",
    "words",
    "with",
    "realistic",
    "usage",
    "and",
    "pacing",
    "for",
    "load",
    "tests",
]
# Transient-fault counters kept per server (fail_times); beyond this many ids, reset.
_MAX_FAIL_IDS = 10_000
# Prompt-size estimate for usage: OpenAI's rule of thumb of ~4 bytes of JSON text per token.
_BYTES_PER_TOKEN = 4
# reasoning_effort -> words of reasoning before the answer, doubling with the effort as a
# reasoning model's thinking grows; "none" (and an unknown effort) thinks not at all.
REASONING_WORDS = {"minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
# Reasoning words start this far along the word list, so they differ from the answer's.
_REASONING_SEED = 13
# Fake, fixed: a target that replays signed thinking (Anthropic) gets it back unchanged.
REASONING_SIGNATURE = "bW9jay1yZWFzb25pbmctc2lnbmF0dXJl"
# Streamed tool-call arguments come in fragments of about this many characters: a few
# tokens each, as OpenAI's do.
_ARGUMENT_PIECE_CHARS = 8


class MockOverrides(Struct, kw_only=True):
    tokens: Annotated[int, Meta(ge=0, le=1_000_000)] | UnsetType = UNSET
    ttft_ms: Annotated[float, Meta(ge=0, le=600_000)] | UnsetType = UNSET
    itl_ms: Annotated[float, Meta(ge=0, le=60_000)] | UnsetType = UNSET
    fail_status: Annotated[int, Meta(ge=400, le=599)] | UnsetType | None = UNSET
    reset_after: Annotated[int, Meta(ge=0)] | UnsetType | None = UNSET
    # Close cleanly after N frames, without [DONE] (a premature end).
    end_after: Annotated[int, Meta(ge=0)] | None = None
    # After N frames, send bytes that are not SSE.
    garbage_after: Annotated[int, Meta(ge=0)] | None = None
    # False: ignore stream_options.include_usage and omit usage, as some servers do.
    usage: bool | UnsetType = UNSET
    # With fail_status: fail only the first N requests that carry the same fail_id, then
    # answer (a transient fault, for retry tests through a gateway).
    fail_times: Annotated[int, Meta(ge=0)] | None = None
    fail_id: str = ""
    # False: answer text even when the request offers tools (load tests that send tools).
    tool_calls: bool = True


class StreamOptions(Struct, kw_only=True):
    include_usage: bool | None = None


class MockRequest(Struct, kw_only=True):
    model: str = "mock"
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    messages: Raw | UnsetType = UNSET
    prompt: Raw | UnsetType = UNSET
    # Raw: decoded only when present, so requests without tools pay nothing for them.
    tools: Raw | UnsetType = UNSET
    tool_choice: Raw | UnsetType = UNSET
    response_format: Raw | UnsetType = UNSET  # Raw for the same reason
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=MAX_TOP)] | None = None
    mock: MockOverrides | None = None


_decode_request = msgspec.json.Decoder(MockRequest).decode
_encode = msgspec.json.Encoder().encode


class Plan(Struct, kw_only=True, frozen=True):
    """Everything about one answer, decided before the first byte."""

    endpoint: Endpoint
    model: str
    id: str
    created: int
    tokens: int  # completion tokens: words of text, or the tool call's estimate
    finish_reason: str
    prompt_tokens: int
    seed: int
    ttft_s: float
    itl_s: float
    fail_status: int | None
    reset_after: int | None
    end_after: int | None
    garbage_after: int | None
    usage: bool
    stream: bool
    include_usage: bool
    tool_call: ToolCall | None = None
    # Structured output: the JSON document answered as the content (else words).
    content: str | None = None
    # Words of reasoning before the answer (reasoning_effort), counted in completion tokens.
    reasoning_tokens: int = 0
    # logprobs asked: the alternatives per token (top_logprobs); None: not asked.
    logprobs: int | None = None


def decode(body: bytes) -> MockRequest:
    """Raises msgspec.ValidationError / DecodeError on a bad body."""
    return _decode_request(body)


def plan(
    req: MockRequest,
    *,
    endpoint: Endpoint,
    config: MockConfig,
    rolls: tuple[float, float, float],
    created: int,
    serial: int,
) -> Plan:
    """Decide the answer. ``rolls`` are three uniform [0, 1) draws (fault, fault kind,
    reset point) from the caller, so this stays pure and testable."""
    o = req.mock or MockOverrides()
    wanted = config.tokens if o.tokens is UNSET else o.tokens
    cap = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    thinking = 0
    if req.reasoning_effort is not None and endpoint == "chat":
        thinking = REASONING_WORDS.get(req.reasoning_effort, 0)
        if cap is not None:  # reasoning spends the cap first, as a reasoning model's does
            thinking = min(thinking, cap)
            cap -= thinking
    tokens = min(wanted, cap) if cap is not None else wanted
    finish_reason = "length" if cap is not None and cap < wanted else "stop"
    content_frames = tokens
    call = None
    if req.tools is not UNSET and endpoint == "chat" and o.tool_calls:
        call = tool_call(tools=req.tools, tool_choice=req.tool_choice, messages=req.messages, serial=serial)
        if call is not None:
            # ~4 characters of arguments per token, and one for the name.
            tokens = max(1, len(call.arguments) // _BYTES_PER_TOKEN) + 1
            finish_reason = "tool_calls"
            content_frames = _pieces(call.arguments)
    content = None
    if call is None and req.response_format is not UNSET and endpoint == "chat":
        content = structured_content(req.response_format, text="".join(_words(req.seed or 0, tokens)))
        if content is not None:
            # Whole, whatever the cap (a cut document would not parse), ~4 characters a token.
            tokens = max(1, len(content) // _BYTES_PER_TOKEN)
            finish_reason = "stop"
            content_frames = _pieces(content)
    fail: int | None
    if o.fail_status is not UNSET:
        fail = o.fail_status
    elif config.error_status and rolls[0] < config.error_rate:
        fail = config.error_status[int(rolls[1] * len(config.error_status))]
    else:
        fail = None
    reset: int | None
    if o.reset_after is not UNSET:
        reset = o.reset_after
    elif rolls[0] >= 1 - config.reset_rate:
        reset = int(rolls[2] * max(content_frames + thinking, 1))
    else:
        reset = None
    usage = config.usage if o.usage is UNSET else o.usage
    src = req.messages if req.messages is not UNSET else req.prompt
    prompt_bytes = len(src) if src is not UNSET else 0
    stream = bool(req.stream)
    return Plan(
        endpoint=endpoint,
        model=req.model,
        id=f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-mock{serial:012d}",
        created=created,
        tokens=tokens,
        finish_reason=finish_reason,
        prompt_tokens=max(1, prompt_bytes // _BYTES_PER_TOKEN),
        seed=req.seed or 0,
        ttft_s=(config.ttft_ms if o.ttft_ms is UNSET else o.ttft_ms) / 1000,
        itl_s=(config.itl_ms if o.itl_ms is UNSET else o.itl_ms) / 1000,
        fail_status=fail,
        reset_after=reset if stream else None,
        end_after=o.end_after,
        garbage_after=o.garbage_after,
        usage=usage,
        stream=stream,
        include_usage=usage and bool(req.stream_options and req.stream_options.include_usage),
        tool_call=call,
        content=content,
        reasoning_tokens=thinking,
        logprobs=(req.top_logprobs or 0) if req.logprobs and endpoint == "chat" else None,
    )


def _pieces(text: str) -> int:
    return max(1, -(-len(text) // _ARGUMENT_PIECE_CHARS))


class Planner:
    """Plans answers for one server: numbers them and draws their random faults.
    ``random`` and ``clock`` are injectable so tests can fix them."""

    __slots__ = ("_clock", "_config", "_failed", "_random", "_serial")

    def __init__(
        self,
        config: MockConfig,
        *,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._random = random
        self._clock = clock
        self._serial = 0
        self._failed: dict[str, int] = {}  # fail_id -> failures so far (fail_times)

    def __call__(self, body: bytes, *, endpoint: Endpoint) -> Plan:
        """Raises InvalidRequest (param ``mock``) for a body the fake cannot read,
        (param ``tools`` / ``tool_choice`` / ``messages``) for tools it cannot use."""
        try:
            req = decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise InvalidRequest(f"mock provider: invalid request: {e}", param="mock") from None
        self._serial += 1
        r = self._random
        p = plan(
            req,
            endpoint=endpoint,
            config=self._config,
            rolls=(r(), r(), r()),
            created=int(self._clock()),
            serial=self._serial,
        )
        o = req.mock
        if o is not None and o.fail_times is not None and p.fail_status is not None:
            if len(self._failed) > _MAX_FAIL_IDS:
                self._failed.clear()
            done = self._failed.get(o.fail_id, 0)
            if done >= o.fail_times:
                return msgspec.structs.replace(p, fail_status=None)
            self._failed[o.fail_id] = done + 1
        return p


def words(p: Plan) -> Iterator[str]:
    return _words(p.seed, p.tokens)


def _text_pieces(p: Plan) -> Iterator[str]:
    """The text answer as its stream's content chunks carry it: words, or fragments of
    the structured content."""
    if p.content is None:
        return words(p)
    doc, step = p.content, _ARGUMENT_PIECE_CHARS
    return (doc[i : i + step] for i in range(0, len(doc), step))


def _words(seed: int, tokens: int) -> Iterator[str]:
    n = len(_WORDS)
    for i in range(tokens):
        w = _WORDS[(seed + i) % n]
        yield w if i == 0 else " " + w


def _usage(p: Plan) -> bytes:
    completion = p.tokens + p.reasoning_tokens
    usage = b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d' % (
        p.prompt_tokens,
        completion,
        p.prompt_tokens + completion,
    )
    if p.reasoning_tokens:
        usage += b',"completion_tokens_details":{"reasoning_tokens":%d}' % p.reasoning_tokens
    return usage + b"}"


def reasoning(p: Plan) -> Iterator[str]:
    """The words of the answer's reasoning (none without ``reasoning_effort``)."""
    return _words(p.seed + _REASONING_SEED, p.reasoning_tokens)


def _reasoning_fields(p: Plan) -> bytes:
    """The message's reasoning fields, after its content (nothing without reasoning)."""
    if not p.reasoning_tokens:
        return b""
    text = _encode("".join(reasoning(p)))
    return b',"reasoning":%s,"reasoning_signature":"%s"' % (text, REASONING_SIGNATURE.encode())


def _object(p: Plan, *, chunk: bool) -> str:
    if p.endpoint == "chat":
        return "chat.completion.chunk" if chunk else "chat.completion"
    return "text_completion"


def _prefix(p: Plan, *, chunk: bool) -> bytes:
    return b'{"id":%s,"object":%s,"created":%d,"model":%s,' % (
        _encode(p.id),
        _encode(_object(p, chunk=chunk)),
        p.created,
        _encode(p.model),
    )


def completion_body(p: Plan) -> bytes:
    call = p.tool_call
    if call is not None:
        choices = (
            b'{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":%s,"type":"function",'
            b'"function":{"name":%s,"arguments":%s}}]%s},"logprobs":null,"finish_reason":"tool_calls"}'
            % (_encode(call.id), _encode(call.name), _encode(call.arguments), _reasoning_fields(p))
        )
        usage = b',"usage":' + _usage(p) if p.usage else b""
        return b'%s"choices":[%s]%s}' % (_prefix(p, chunk=False), choices, usage)
    text = _encode("".join(words(p)) if p.content is None else p.content)
    if p.endpoint == "chat":
        choice = b'{"index":0,"message":{"role":"assistant","content":%s%s},"logprobs":%s,"finish_reason":%s}'
        logprobs = b"null" if p.logprobs is None else logprobs_content(list(_text_pieces(p)), top=p.logprobs)
        choices = choice % (text, _reasoning_fields(p), logprobs, _encode(p.finish_reason))
    else:
        choice = b'{"index":0,"text":%s,"logprobs":null,"finish_reason":%s}'
        choices = choice % (text, _encode(p.finish_reason))
    usage = b',"usage":' + _usage(p) if p.usage else b""
    return b'%s"choices":[%s]%s}' % (_prefix(p, chunk=False), choices, usage)


def error_body(status: int) -> bytes:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    msg = _encode(f"mock provider: injected HTTP {status}")
    return b'{"error":{"message":%s,"type":"%s","param":null,"code":"mock_injected"}}' % (msg, kind.encode())


def frames(p: Plan) -> Iterator[bytes]:
    """The SSE frames of a streamed answer, ``data: [DONE]`` included."""
    head = b"data: " + _prefix(p, chunk=True) + b'"choices":[{"index":0,'
    if p.tool_call is not None:
        yield from _reasoning_frames(p, head=head)
        yield from _call_frames(p.tool_call, head=head)
        last = head + b'"delta":{},"logprobs":null,"finish_reason":'
    else:
        if p.endpoint == "chat":
            yield head + b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
            yield from _reasoning_frames(p, head=head)
            before, after = head + b'"delta":{"content":', b'},"logprobs":null,"finish_reason":null}]}\n\n'
            last = head + b'"delta":{},"logprobs":null,"finish_reason":'
        else:
            before, after = head + b'"text":', b',"logprobs":null,"finish_reason":null}]}\n\n'
            last = head + b'"text":"","logprobs":null,"finish_reason":'
        if p.logprobs is None:
            for piece in _text_pieces(p):
                yield before + _encode(piece) + after
        else:
            top, after = p.logprobs, b'},"logprobs":{"content":[%s],"refusal":null},"finish_reason":null}]}\n\n'
            for i, piece in enumerate(_text_pieces(p)):
                yield before + _encode(piece) + after % logprob_entry(piece, position=i, top=top)
    # Concatenated, never %-formatted: ``head`` holds the client's model name.
    yield last + _encode(p.finish_reason) + b"}]}\n\n"
    if p.include_usage:
        yield b"data: " + _prefix(p, chunk=True) + b'"choices":[],"usage":' + _usage(p) + b"}\n\n"
    yield b"data: [DONE]\n\n"


def _reasoning_frames(p: Plan, *, head: bytes) -> Iterator[bytes]:
    """A ``delta.reasoning`` chunk a word, the signature with the last."""
    end = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    before, n = head + b'"delta":{"reasoning":', p.reasoning_tokens
    for i, w in enumerate(reasoning(p), 1):
        if i < n:
            yield before + _encode(w) + end
        else:
            yield before + _encode(w) + b',"reasoning_signature":"%s"' % REASONING_SIGNATURE.encode() + end


def _call_frames(call: ToolCall, *, head: bytes) -> Iterator[bytes]:
    """The call's id and name with empty arguments, then the arguments in fragments."""
    end = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    opening = (
        b'"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":%s,"type":"function",'
        b'"function":{"name":%s,"arguments":""}}]' % (_encode(call.id), _encode(call.name))
    )
    # Concatenated: ``head`` holds the client's model name.
    yield head + opening + end
    before = head + b'"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
    after = b"}}]" + end
    args, step = call.arguments, _ARGUMENT_PIECE_CHARS
    for i in range(0, len(args), step):
        yield before + _encode(args[i : i + step]) + after


def _content_frames(p: Plan) -> int:
    """The frames generated between the first and the finish: reasoning words, then
    words, or pieces of the arguments or the structured content."""
    if p.tool_call is not None:
        return _pieces(p.tool_call.arguments) + p.reasoning_tokens
    return (p.tokens if p.content is None else _pieces(p.content)) + p.reasoning_tokens


def unary_delay_s(p: Plan) -> float:
    """A whole answer takes as long as its stream would have."""
    return p.ttft_s + p.itl_s * max(_content_frames(p) - 1, 0)


class MockReset(Exception):
    """The plan says: drop the connection here."""


GARBAGE = b"<html><body>502 Bad Gateway</body></html>\n\n"


async def paced(p: Plan) -> AsyncIterator[bytes]:
    """``frames`` at the planned pace; raises MockReset at the planned reset point.
    The first content frame waits ``ttft_s``, every later one ``itl_s``."""
    sleep, itl, paced_frames = asyncio.sleep, p.itl_s, _content_frames(p) + 1
    for i, frame in enumerate(frames(p)):
        if p.reset_after is not None and i >= p.reset_after:
            raise MockReset(f"mock provider: stream reset after {p.reset_after} chunks")
        if p.end_after is not None and i >= p.end_after:
            return
        if p.garbage_after is not None and i >= p.garbage_after:
            yield GARBAGE
            return
        if i == 0:
            if p.ttft_s:
                await sleep(p.ttft_s)
        elif itl and i <= paced_frames:
            # Paced: the content frames and the finish frame (each a generated token or
            # the end of generation). The usage chunk and [DONE] follow at once, as
            # real providers send them.
            await sleep(itl)
        yield frame
