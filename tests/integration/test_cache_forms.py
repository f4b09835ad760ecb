"""The response cache's hits in the other form than the entry was made in, over real
sockets, the official openai SDK as the client: a stream kept through a provider that
speaks Anthropic's or Gemini's dialect (``gateway mock`` answering both), an answer of
two choices (``n: 2``) and one with log probabilities (a chat completion's, and a text
completion's in its legacy shape), each kept in one form and given back in the other.
A hit is proven by the upstream's own record (no new request) and by its content equal
to what the first request got.

``gateway mock`` answers one choice whatever ``n`` asks (it reads no ``n``) and a text
completion without log probabilities, so those answers come from the suite's scripted
upstream (``tests.faulty``), sent as OpenAI sends them: a stream's chunks of both choices
interleaved, each under its index; a text completion's logprobs as lists by token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import Proc, sdk_client, serve_config, start_mock
from tests.faulty import DONE, FaultyUpstream, Request, respond, respond_chunked

KEY = "sk-cache-forms-upstream-0123456789"
N_SCENARIO = "cache-forms-n2"
TEXT_SCENARIO = "cache-forms-text"
# Two choices of three words each, with log probabilities (the chosen token and one
# alternative), as OpenAI answers ``n: 2, logprobs: true, top_logprobs: 2``.
N_WORDS = (["red", " green", " blue"], ["one", " two", " three"])
N_USAGE = {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}


def _logprob(token: str, position: int, choice: int) -> dict[str, Any]:
    logprob = -0.25 * (1 + position + 3 * choice)
    top = [
        {"token": token, "logprob": logprob, "bytes": list(token.encode())},
        {"token": "maybe", "logprob": logprob - 1, "bytes": list(b"maybe")},
    ]
    return {**top[0], "top_logprobs": top}


def _n_chunk(choice: dict[str, Any], **more: Any) -> bytes:
    obj = {"id": "chatcmpl-n2", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return b"data: " + msgspec.json.encode({**obj, **more}) + b"\n\n"


def _n_stream() -> list[bytes]:
    opening = {"role": "assistant", "content": ""}
    frames = [_n_chunk({"index": i, "delta": opening, "finish_reason": None}) for i in (0, 1)]
    for position in range(3):
        for i, words in enumerate(N_WORDS):
            logprobs = {"content": [_logprob(words[position], position, i)], "refusal": None}
            delta = {"content": words[position]}
            frames.append(_n_chunk({"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": None}))
    frames += [_n_chunk({"index": i, "delta": {}, "finish_reason": "stop"}) for i in (0, 1)]
    usage = {"id": "chatcmpl-n2", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
    frames.append(b"data: " + msgspec.json.encode({**usage, "usage": N_USAGE}) + b"\n\n")
    return [*frames, DONE]


def _n_completion() -> bytes:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": "".join(words)},
            "logprobs": {"content": [_logprob(w, p, i) for p, w in enumerate(words)], "refusal": None},
            "finish_reason": "stop",
        }
        for i, words in enumerate(N_WORDS)
    ]
    body = {"id": "chatcmpl-n2", "object": "chat.completion", "created": 1, "model": "m", "choices": choices}
    return msgspec.json.encode({**body, "usage": N_USAGE})


TEXT_WORDS = ["Once", " upon", " a", " time"]
TEXT_PROMPT = "Tell me a story"


def _text_logprobs(position: int, offset: int) -> dict[str, Any]:
    """A text completion's ``logprobs`` for one token, in the legacy shape: lists by token."""
    token, logprob = TEXT_WORDS[position], -0.5 * (1 + position)
    return {
        "tokens": [token],
        "token_logprobs": [logprob],
        "top_logprobs": [{token: logprob, " maybe": logprob - 1}],
        "text_offset": [offset],
    }


def _text_answer(*, stream: bool) -> list[bytes]:
    """The text completion ``logprobs: 2`` gets: its stream's frames, or one body."""
    head = {"id": "cmpl-text", "object": "text_completion", "created": 1, "model": "m"}
    offsets = [len(TEXT_PROMPT) + len("".join(TEXT_WORDS[:i])) for i in range(len(TEXT_WORDS))]
    usage = {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    if not stream:
        parts = [_text_logprobs(i, offset) for i, offset in enumerate(offsets)]
        logprobs = {name: [v for part in parts for v in part[name]] for name in parts[0]}
        choice = {"index": 0, "text": "".join(TEXT_WORDS), "logprobs": logprobs, "finish_reason": "stop"}
        return [msgspec.json.encode({**head, "choices": [choice], "usage": usage})]
    frames = [
        {**head, "choices": [{"index": 0, "text": w, "logprobs": _text_logprobs(i, offsets[i]), "finish_reason": None}]}
        for i, w in enumerate(TEXT_WORDS)
    ]
    frames.append({**head, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]})
    frames.append({**head, "choices": [], "usage": usage})
    return [b"data: " + msgspec.json.encode(f) + b"\n\n" for f in frames] + [DONE]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("cache-forms-up"), "--api-key", KEY, "--record", "1000")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, faulty: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    async def two_choices(req: Request, writer: asyncio.StreamWriter) -> None:
        if msgspec.json.decode(req.body).get("stream"):
            await respond_chunked(writer, _n_stream())
        else:
            await respond(writer, 200, _n_completion())

    async def text(req: Request, writer: asyncio.StreamWriter) -> None:
        if msgspec.json.decode(req.body).get("stream"):
            await respond_chunked(writer, _text_answer(stream=True))
        else:
            await respond(writer, 200, _text_answer(stream=False)[0])

    faulty.scripts[N_SCENARIO] = two_choices
    faulty.scripts[TEXT_SCENARIO] = text
    keys = [{"value": KEY}]
    config = {
        "providers": {
            "up": {"base_url": up.url + "/v1", "keys": keys},
            "claude": {"dialect": "anthropic", "base_url": up.url, "keys": keys},
            "gem": {"dialect": "gemini", "base_url": up.url, "keys": keys},
            "two": {"base_url": faulty.url(N_SCENARIO) + "/v1"},
            "text": {"base_url": faulty.url(TEXT_SCENARIO) + "/v1"},
        },
        "default_provider": "up",
        "cache": {"enabled": True},
    }
    proc = serve_config(config, tmp_path_factory.mktemp("cache-forms-gw"))
    yield proc
    proc.stop()


def _received(up: Proc) -> int:
    return len(httpx.get(up.url + "/mock/requests").json())


def _n_received(faulty: FaultyUpstream, name: str = N_SCENARIO) -> int:
    return sum(1 for scenario, _ in faulty.requests if scenario == name)


def _ns() -> dict[str, str]:
    """A namespace of the test's own: tests never see each other's entries."""
    return {"x-bf-cache-key": uuid.uuid4().hex}


def _debug(obj: Any) -> dict[str, Any]:
    debug: dict[str, Any] = (obj.model_extra or {})["extra_fields"]["cache_debug"]
    return debug


def _ask(gw: Proc, model: str, text: str, headers: dict[str, str], **more: Any) -> Any:
    return sdk_client(gw.url + "/v1").chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers, **more
    )


def _stream(gw: Proc, model: str, text: str, headers: dict[str, str], **more: Any) -> list[Any]:
    return list(_ask(gw, model, text, headers, stream=True, **more))


def _texts(chunks: list[Any]) -> dict[int, str]:
    """Each choice's content, added up over the chunks, by index."""
    out: dict[int, str] = {}
    for chunk in chunks:
        for c in chunk.choices:
            out[c.index] = out.get(c.index, "") + (c.delta.content or "")
    return out


def _stream_logprobs(chunks: list[Any]) -> dict[int, list[dict[str, Any]]]:
    """Each choice's ``logprobs.content`` entries, added up over the chunks, by index."""
    out: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        for c in chunk.choices:
            if c.logprobs is not None and c.logprobs.content:
                out.setdefault(c.index, []).extend(e.model_dump() for e in c.logprobs.content)
    return out


def _unary_logprobs(answer: Any) -> dict[int, list[dict[str, Any]]]:
    return {c.index: [e.model_dump() for e in c.logprobs.content] for c in answer.choices if c.logprobs is not None}


def _finish(chunks: list[Any]) -> str:
    finish: str = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    return finish


@pytest.mark.parametrize(
    ("model", "path"),
    [("claude/claude-x", "/v1/messages"), ("gem/gem-x", "/v1beta/models/gem-x:streamGenerateContent")],
)
def test_cache_forms_translated_stream_is_kept_and_hits_in_both_forms(
    gw: Proc, up: Proc, model: str, path: str
) -> None:
    h = _ns()
    first = _stream(gw, model, "translated", h)
    assert httpx.get(up.url + "/mock/requests").json()[-1]["path"] == path  # the dialect's own stream
    text = _texts(first)[0]
    usage = first[-1].usage
    assert text and usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert _debug(first[-1])["cache_hit"] is False
    before = _received(up)
    again = _stream(gw, model, "translated", h)
    assert _received(up) == before  # no upstream call
    assert _texts(again) == {0: text}
    assert _debug(again[-1])["cache_hit"] is True
    whole = _ask(gw, model, "translated", h)
    assert _received(up) == before
    assert [c.message.content for c in whole.choices] == [text]
    assert whole.choices[0].finish_reason == _finish(first)
    assert whole.usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
    assert (whole.usage.model_extra or {})["cost"]["total_cost"] == 0
    assert _debug(whole)["cache_hit"] is True
    assert (whole.model_extra or {})["extra_fields"]["provider"] == model.split("/")[0]


def test_cache_forms_two_choices_kept_from_a_stream_come_back_unary_each_under_its_index(
    gw: Proc, faulty: FaultyUpstream
) -> None:
    h = _ns()
    more: dict[str, Any] = {"n": 2, "logprobs": True, "top_logprobs": 2}
    first = _stream(gw, "two/m", "two", h, **more)
    texts = _texts(first)
    assert texts == {i: "".join(words) for i, words in enumerate(N_WORDS)}  # the upstream's, relayed
    before = _n_received(faulty)
    whole = _ask(gw, "two/m", "two", h, **more)
    assert _n_received(faulty) == before  # a hit
    assert _debug(whole)["cache_hit"] is True
    assert {c.index: c.message.content for c in whole.choices} == texts
    assert {c.index: c.finish_reason for c in whole.choices} == {0: "stop", 1: "stop"}
    assert _unary_logprobs(whole) == _stream_logprobs(first)
    assert whole.usage is not None and whole.usage.completion_tokens == N_USAGE["completion_tokens"]


def test_cache_forms_two_choices_kept_unary_come_back_streamed_each_under_its_index(
    gw: Proc, faulty: FaultyUpstream
) -> None:
    h = _ns()
    more: dict[str, Any] = {"n": 2, "logprobs": True, "top_logprobs": 2}
    whole = _ask(gw, "two/m", "two unary", h, **more)
    assert [c.message.content for c in whole.choices] == ["".join(words) for words in N_WORDS]
    before = _n_received(faulty)
    chunks = _stream(gw, "two/m", "two unary", h, stream_options={"include_usage": True}, **more)
    assert _n_received(faulty) == before  # a hit
    assert _texts(chunks) == {c.index: c.message.content for c in whole.choices}
    finishes = {c.index: c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason}
    assert finishes == {0: "stop", 1: "stop"}
    assert _stream_logprobs(chunks) == _unary_logprobs(whole)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == N_USAGE["completion_tokens"]
    assert _debug(chunks[-1])["cache_hit"] is True


def test_cache_forms_logprobs_kept_from_a_stream_come_back_unary(gw: Proc, up: Proc) -> None:
    h = _ns()
    more: dict[str, Any] = {"logprobs": True, "top_logprobs": 2}
    first = _stream(gw, "up/gpt-x", "logprobs", h, **more)
    streamed = _stream_logprobs(first)
    assert len(streamed[0]) > 1 and all(len(e["top_logprobs"]) == 2 for e in streamed[0])
    before = _received(up)
    whole = _ask(gw, "up/gpt-x", "logprobs", h, **more)
    assert _received(up) == before
    assert _debug(whole)["cache_hit"] is True
    assert whole.choices[0].message.content == _texts(first)[0]
    assert _unary_logprobs(whole) == streamed


def test_cache_forms_logprobs_kept_unary_come_back_streamed(gw: Proc, up: Proc) -> None:
    h = _ns()
    more: dict[str, Any] = {"logprobs": True, "top_logprobs": 2}
    whole = _ask(gw, "up/gpt-x", "logprobs unary", h, **more)
    kept = _unary_logprobs(whole)
    assert len(kept[0]) > 1 and all(len(e["top_logprobs"]) == 2 for e in kept[0])
    before = _received(up)
    chunks = _stream(gw, "up/gpt-x", "logprobs unary", h, **more)
    assert _received(up) == before
    assert _debug(chunks[-1])["cache_hit"] is True
    assert _texts(chunks) == {0: whole.choices[0].message.content}
    assert _stream_logprobs(chunks) == kept


def _complete(gw: Proc, headers: dict[str, str], *, stream: bool) -> Any:
    return sdk_client(gw.url + "/v1").completions.create(
        model="text/m", prompt=TEXT_PROMPT, logprobs=2, stream=stream, extra_headers=headers
    )


def test_cache_forms_text_completion_logprobs_kept_from_a_stream_come_back_unary(
    gw: Proc, faulty: FaultyUpstream
) -> None:
    h = _ns()
    first = list(_complete(gw, h, stream=True))
    parts = [c.choices[0].logprobs.model_dump() for c in first if c.choices and c.choices[0].logprobs]
    streamed = {name: [v for part in parts for v in part[name]] for name in parts[0]}
    assert streamed["tokens"] == TEXT_WORDS  # the upstream's, relayed
    before = _n_received(faulty, TEXT_SCENARIO)
    whole = _complete(gw, h, stream=False)
    assert _n_received(faulty, TEXT_SCENARIO) == before  # a hit
    assert _debug(whole)["cache_hit"] is True
    assert whole.choices[0].text == "".join(TEXT_WORDS)
    assert whole.choices[0].logprobs is not None and whole.choices[0].logprobs.model_dump() == streamed


def test_cache_forms_text_completion_logprobs_kept_unary_come_back_streamed(gw: Proc, faulty: FaultyUpstream) -> None:
    h = _ns()
    whole = _complete(gw, h, stream=False)
    kept = whole.choices[0].logprobs.model_dump()
    assert kept["tokens"] == TEXT_WORDS
    before = _n_received(faulty, TEXT_SCENARIO)
    chunks = list(_complete(gw, h, stream=True))
    assert _n_received(faulty, TEXT_SCENARIO) == before  # a hit
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(TEXT_WORDS)
    parts = [c.choices[0].logprobs.model_dump() for c in chunks if c.choices and c.choices[0].logprobs]
    assert {name: [v for part in parts for v in part[name]] for name in parts[0]} == kept
