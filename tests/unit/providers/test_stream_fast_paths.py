"""The stream translators' fast paths (the common text event read from its bytes) give,
for any valid frame, what the general path (a whole decode) gives: the same bytes out,
or the same error.

Each case runs a stream twice, once as it is and once with the fast path switched off
(the one function that reads the text from the bytes made to answer "not the common
frame"), its frames fed whole, then through the Framer cut at every byte.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import msgspec
import pytest

from gateway.errors import UpstreamProtocolError
from gateway.providers import chunktext
from gateway.providers.anthropic import stream as anthropic_stream
from gateway.providers.gemini import stream as gemini_stream
from gateway.providers.registry import DIALECTS
from gateway.providers.responses import answer
from gateway.relay.sse import Framer

Translator = Callable[[], object]


def _off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunktext.TextChunks, "text", lambda self, data: None)
    monkeypatch.setattr(chunktext.TextChunks, "frame_text", lambda self, region: None)
    monkeypatch.setattr(anthropic_stream, "_text_delta", lambda region: None)
    monkeypatch.setattr(gemini_stream.ChatStream, "_text", lambda self, region: b"")


_ids_made = [itertools.count()]  # restarted by every run: its ids equal the other path's


def _ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer, "new_id", lambda prefix: f"{prefix}{next(_ids_made[0])}")


def _run(make: Callable[[], object], reads: list[bytes]) -> bytes | str:
    """The stream's output for these reads (through a Framer), or its error."""
    _ids_made[0] = itertools.count()
    tr = make()
    feed, close = tr.feed, getattr(tr, "close", lambda: b"")  # type: ignore[attr-defined]
    frame = Framer().feed
    out = []
    try:
        for data in reads:
            region = frame(data)
            if region:
                out.append(feed(region))
        out.append(close())
    except (UpstreamProtocolError, msgspec.DecodeError) as e:
        return f"{type(e).__name__}: {e}"
    return b"".join(out)


def _cuts(frame: bytes) -> Iterator[list[bytes]]:
    yield [frame]
    for k in range(1, len(frame)):
        yield [frame[:k], frame[k:]]


def _check(monkeypatch: pytest.MonkeyPatch, make: Callable[[], object], head: list[bytes], frame: bytes) -> None:
    """``frame`` after ``head`` (fed one read a frame), whole and cut at every byte."""
    fast = [_run(make, head + cut) for cut in _cuts(frame)]
    with monkeypatch.context() as m:
        _off(m)
        slow = [_run(make, head + cut) for cut in _cuts(frame)]
    assert fast == slow


# --- OpenAI chunks to the SDK clients' dialects (chunktext.TextChunks) ---------------

_HEAD = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":17,"model":"gpt-4o",'
_PLAIN = b',"logprobs":null,"finish_reason":null}],"usage":null}'


def _chunk(delta: bytes, tail: bytes = _PLAIN) -> bytes:
    return _HEAD + b'"choices":[{"index":0,"delta":' + delta + tail + b"\n\n"


_ROLE = _chunk(b'{"role":"assistant","content":""}')
_TEXT = _chunk(b'{"content":"Hello"}')


CHUNKS = [
    _chunk(b'{"content":"plain"}'),
    _chunk(b'{"content":"say \\"hi\\" \\\\ \\/ \\n\\t"}'),
    _chunk(b'{"content":"caf\\u00e9 \\ud83d\\ude00 \\u2028"}'),
    _chunk('{"content":"café 😀"}'.encode()),
    _chunk(b'{"content":""}'),
    _chunk(b'{"content": "spaced" }'),
    _chunk(b'{"content":"a","role":"assistant"}'),
    _chunk(b'{"role":"assistant","content":"a"}'),
    _chunk(b'{"content":"a","refusal":"no"}'),
    _chunk(b'{"content":null}'),
    _chunk(b'{"content":5}'),
    _chunk(b'{"content":"\\"},\\"logprobs\\":null,\\"finish_reason\\":null}],\\"usage\\":null}"}'),
    _chunk(b'{"content":"x"}', b',"logprobs":null,"finish_reason":null}]}'),
    _chunk(b'{"content":"x"}', b',"finish_reason":null}]}'),
    _chunk(b'{"content":"x"}', b',"finish_reason":null,"logprobs":null}],"usage":null}'),
    _chunk(b'{"content":"x"}', b',"logprobs":null,"finish_reason":"stop"}],"usage":null}'),
    _chunk(
        b'{"content":"x"}',
        b',"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}',
    ),
    _chunk(b'{"content":"x"}', b',"logprobs":null,"finish_reason":null}],"usage":null,"extra_fields":{"a":1}}'),
    _chunk(
        b'{"content":"x"}',
        b',"logprobs":null,"finish_reason":null}],"usage":null,"error":{"message":"boom","type":"server_error"}}',
    ),
    _chunk(
        b'{"content":"x"}', b',"logprobs":null,"finish_reason":null},{"index":1,"delta":{"content":"y"}}],"usage":null}'
    ),
    _chunk(b'{"content":"bad \x01 control"}'),
    _chunk(b'{"content":"unterminated}'),
    _chunk(b'{"content":"a"\n}'),
    _chunk(b'{"content":"a"\r}'),
    _TEXT.replace(b'"id":"chatcmpl-1"', b'"id":"chatcmpl-2"'),
    _TEXT.replace(
        b'"model":"gpt-4o",', b'"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},'
    ),
    _TEXT + _TEXT,
    _TEXT + b"data: [DONE]\n\n",
    _TEXT.replace(b"\n\n", b"\nid: 7\n\n"),
    _TEXT.replace(b'"choices"', b'\n"choices"'),
]

CLIENTS = {
    "anthropic": b'{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"stream":true}',
    "gemini": b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}',
    "responses": b'{"model":"m","input":"hi","stream":true}',
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("chunk", CHUNKS, ids=range(len(CHUNKS)))
def test_client_stream_fast_path_equals_decode(monkeypatch: pytest.MonkeyPatch, client: str, chunk: bytes) -> None:
    _ids(monkeypatch)
    inbound = DIALECTS[client].inbound
    assert inbound is not None

    def make() -> object:
        return inbound.stream(request=CLIENTS[client])

    _check(monkeypatch, make, [_ROLE, _TEXT], chunk + _TEXT + b"data: [DONE]\n\n")


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_client_stream_takes_the_fast_path(client: str) -> None:
    """After two chunks the stream knows its head: the common chunk is read from its bytes."""
    inbound = DIALECTS[client].inbound
    assert inbound is not None
    tr = inbound.stream(request=CLIENTS[client])
    tr.feed(_ROLE)
    tr.feed(_TEXT)
    plain = tr._plain  # type: ignore[attr-defined]
    assert plain.frame_text(_chunk(b'{"content":"a\\"b"}')) == 'a"b'
    assert plain.text(_chunk(b'{"content":"a\\"b"}')[6:-2]) == 'a"b'


_TWO_LINES = _ROLE.replace(b'"model"', b'\ndata: "model"')


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_client_stream_head_over_two_lines(monkeypatch: pytest.MonkeyPatch, client: str) -> None:
    """A head learned from a chunk in two data lines is not taken for a one-line head."""
    _ids(monkeypatch)
    inbound = DIALECTS[client].inbound
    assert inbound is not None

    def make() -> object:
        return inbound.stream(request=CLIENTS[client])

    _check(monkeypatch, make, [_TWO_LINES], _TEXT.replace(b'"model"', b'\n"model"') + _TEXT)


def test_text_chunks_does_not_learn_a_head_with_fields_it_would_hide() -> None:
    for head in (b'{"usage":null,', b'{"error":null,', b'{"extra_fields":{},', b'{"a":{"b":1,'):
        plain = chunktext.TextChunks()
        plain.learn(head + b'"choices":[{"index":0,"delta":{"content":"a"}}]}')
        assert plain.text(head + b'"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}') is None


# --- Anthropic events to chat chunks ------------------------------------------------

_A_START = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
]
_A_END = (
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":7}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def _a_delta(tail: bytes, index: bytes = b"0") -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + index
        + b',"delta":{"type":"text_delta","text":'
        + tail
        + b"\n\n"
    )


ANTHROPIC_EVENTS = [
    _a_delta(b'"plain"}}'),
    _a_delta(b'"say \\"hi\\" \\\\ \\n"}}'),
    _a_delta(b'"caf\\u00e9 \\ud83d\\ude00"}}'),
    _a_delta('"café 😀"}}'.encode()),
    _a_delta(b'""}}'),
    _a_delta(b'"!"}              }'),
    _a_delta(b'"!" } }'),
    _a_delta(b'"!"}}', b"12"),
    _a_delta(b'"!"}}', b"01"),
    _a_delta(b'"!"}}', b"-1"),
    _a_delta(b'"!"}}', b"99999999999999999999999"),
    _a_delta(b'"!","extra":1}}'),
    _a_delta(b"null}}"),
    _a_delta(b'"a"}}}'),
    _a_delta(b'"a"\n}}'),
    _a_delta(b'"a\\"}}"}}'),
    _a_delta(b'"a"}},"x":1}'),
    _a_delta(b'"a"}}\x0c'),
    _a_delta(b'"a"}}') + _a_delta(b'"b"}}'),
    _a_delta(b'"a"}}').replace(b"\n\n", b"\nid: 3\n\n"),
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "docs"}}\n\n',
    b"event: content_block_delta\n"
    b'data: {"index":0,"type":"content_block_delta","delta":{"text":"reordered","type":"text_delta"}}\n\n',
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"no event line"}}\n\n',
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}\n\n',
]


@pytest.mark.parametrize("event", ANTHROPIC_EVENTS, ids=range(len(ANTHROPIC_EVENTS)))
def test_anthropic_upstream_fast_path_equals_decode(monkeypatch: pytest.MonkeyPatch, event: bytes) -> None:
    translator = DIALECTS["anthropic"].translator
    assert translator is not None

    def make() -> object:
        return translator.chat_stream(model="claude", created=17)

    _check(monkeypatch, make, _A_START, event + _a_delta(b'"tail"}}') + _A_END)


def test_anthropic_upstream_takes_the_fast_path() -> None:
    assert anthropic_stream._text_delta(_a_delta(b'"a\\"b"}}')) == 'a"b'
    assert anthropic_stream._text_delta(_a_delta(b'"!"}   }')) is None  # padded: decoded whole


# --- Gemini frames to chat chunks ----------------------------------------------------

_G_USAGE = b'"usageMetadata": {"promptTokenCount": 3,"candidatesTokenCount": %d,"totalTokenCount": 9}'


def _g(
    text: bytes, rest: bytes = b'"modelVersion": "gemini-2.5-flash","responseId": "r1"}', end: bytes = b',"index": 0'
) -> bytes:
    return (
        b'data: {"candidates": [{"content": {"parts": [{"text": '
        + text
        + b'}],"role": "model"}'
        + end
        + b"}],"
        + rest
        + b"\r\n\r\n"
    )


_G_FIRST = [_g(b'"Once"', _G_USAGE % 1 + b',"modelVersion": "gemini-2.5-flash","responseId": "r1"}')]
_G_END = _g(
    b'""',
    _G_USAGE % 8 + b',"modelVersion": "gemini-2.5-flash","responseId": "r1"}',
    b',"finishReason": "STOP","index": 0',
)

GEMINI_FRAMES = [
    _g(b'"plain"', _G_USAGE % 2 + b',"modelVersion": "gemini-2.5-flash","responseId": "r1"}'),
    _g(b'"plain"'),
    _g(b'"say \\"hi\\" \\\\ \\n"'),
    _g(b'"caf\\u00e9 \\ud83d\\ude00"'),
    _g('"café 😀"'.encode()),
    _g(b'""'),
    _g(b'"\\"}],\\"role\\": \\"model\\"},\\"index\\": 0}],\\""'),
    _g(b'"a"', b'"modelVersion": "m",' + _G_USAGE % 4 + b"}"),
    _g(b'"a"', b'"responseId": "r1","candidates": [{"content": {"parts": [{"text": "dup"}]},"index": 0}]}'),
    _g(b'"a"', b'"error": {"code": 500,"message": "boom","status": "INTERNAL"}}'),
    _g(b'"a"', b'"promptFeedback": {"blockReason": "SAFETY"}}'),
    _g(b'"a"', b'"modelVersion": "m"\n}'),
    _g(b'"a"', b'"modelVersion": "m"}  '),
    _g(b'"a"', b' "modelVersion": "m"}'),
    _g(b'"a"', b"}"),
    _g(b'"a"', b'"usageMetadata": 5}'),
    _g(b'"a"', end=b""),
    _g(b'"a"', end=b',"index": 1'),
    _g(b'"a","thought": true'),
    _g(b'"a"', end=b',"finishReason": "MAX_TOKENS","index": 0'),
    _g(b"null"),
    _g(b'"a"') + _g(b'"b"'),
    _g(b'"a"').replace(b"\r\n\r\n", b"\r\nid: 4\r\n\r\n"),
]


@pytest.mark.parametrize("frame", GEMINI_FRAMES, ids=range(len(GEMINI_FRAMES)))
def test_gemini_upstream_fast_path_equals_decode(monkeypatch: pytest.MonkeyPatch, frame: bytes) -> None:
    translator = DIALECTS["gemini"].translator
    assert translator is not None

    def make() -> object:
        return translator.chat_stream(model="gemini-2.5-flash", created=17)

    _check(monkeypatch, make, _G_FIRST, frame + _g(b'"tail"') + _G_END)


def test_gemini_upstream_takes_the_fast_path() -> None:
    translator = DIALECTS["gemini"].translator
    assert translator is not None
    tr = translator.chat_stream(model="gemini-2.5-flash", created=17)
    frame = Framer().feed
    tr.feed(frame(_G_FIRST[0]))
    assert tr._text(frame(_g(b'"a\\"b"')))  # type: ignore[attr-defined]
