"""gateway.relay.watch: what the client gets of an upstream stream, and the usage kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.accounting.tokens import CompletionCounter, Tokenizers
from gateway.accounting.usage import Usage
from gateway.config import MockConfig
from gateway.errors import UpstreamProtocolError
from gateway.providers import Endpoint, mock
from gateway.relay import sse
from gateway.relay.watch import Finisher, StreamWatch, add_cost, splice_object, with_cost, with_usage

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keepalive\n\n"
COST = b'{"total_cost":1.5}'
PROMPT = 10  # the fake's counted prompt

TOKENIZERS = Tokenizers()
GPT4O = TOKENIZERS.for_model("gpt-4o")

BODIES: dict[Endpoint, dict[str, Any]] = {
    "chat": {"model": "mock-chat", "messages": [{"role": "user", "content": "hello there"}], "stream": True},
    "text": {"model": "mock-instruct", "prompt": "once upon a time", "stream": True},
}
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "text")


def extra(chunk_index: int, estimated: bool, _last: bytes) -> bytes:
    return b'{"chunk_index":%d,"est":%s}' % (chunk_index, b"true" if estimated else b"false")


def counted(completion_tokens: int) -> Usage:
    return Usage(prompt_tokens=PROMPT, completion_tokens=completion_tokens, total_tokens=PROMPT + completion_tokens)


def finisher(cost: bytes | None = COST) -> Finisher:
    return Finisher(extra=extra, cost=lambda _usage: cost, counted=counted)


def make_plan(endpoint: Endpoint, *, upstream_usage: bool) -> mock.Plan:
    body = dict(BODIES[endpoint], stream_options={"include_usage": True})
    if not upstream_usage:
        body["mock"] = {"usage": False}
    req = mock.decode(json.dumps(body).encode())
    return mock.plan(req, endpoint=endpoint, config=MockConfig(), rolls=(0.5, 0.5, 0.5), created=1, serial=1)


def stream(endpoint: Endpoint, *, upstream_usage: bool) -> list[bytes]:
    frames = list(mock.frames(make_plan(endpoint, upstream_usage=upstream_usage)))
    assert frames[-1] == DONE
    assert any(b'"choices":[]' in f for f in frames) is upstream_usage
    return frames


def new_watch(*, client_usage: bool, count: bool = False, cost: bytes | None = COST) -> StreamWatch:
    counter = CompletionCounter(GPT4O) if count else None
    return StreamWatch(client_usage=client_usage, counter=counter, finish=finisher(cost))


def run(watch: StreamWatch, regions: list[bytes]) -> bytes:
    out = b"".join(watch.process(r) for r in regions)
    assert watch.error is None
    return out


def payload(frame: bytes) -> Any:
    data = sse.data_of(frame)
    assert data is not None
    return json.loads(data)


def data_frames(out: bytes) -> list[bytes]:
    return [f for f in sse.split(out) if f.startswith(b"data:")]


def content(frames: list[bytes]) -> str:
    """The generated text of a mock stream."""
    text = []
    for f in frames:
        if f == DONE:
            continue
        for c in payload(f)["choices"]:
            text.append(c.get("text") or (c.get("delta") or {}).get("content") or "")
    return "".join(text)


def feeds(frames: list[bytes]) -> list[list[bytes]]:
    """The stream as one region and as one region per frame."""
    return [[b"".join(frames)], frames]


# --- (a) upstream usage, client did not ask ----------------------------------------------


def usages(out: bytes) -> list[Any]:
    """The data frames of ``out`` whose usage is not null."""
    return [p for f in data_frames(out) if f != DONE and (p := strict_json(f)).get("usage") is not None]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("by_frame", [False, True])
def test_watch_usage_on_finish_chunk_client_did_not_ask_for(endpoint: Endpoint, by_frame: bool) -> None:
    frames = stream(endpoint, upstream_usage=True)
    *body, finish, usage_chunk, done = frames
    assert done == DONE
    watch = new_watch(client_usage=False)
    out = run(watch, frames if by_frame else [b"".join(frames)])
    got = sse.split(out)
    # The usage-only chunk is not relayed: its usage is on the finish chunk.
    assert not any(b'"choices":[]' in f for f in got)
    assert got[-1] == DONE
    for f in got[:-1]:
        payload(f)  # every frame but [DONE] is JSON
    # All but the final chunk pass byte for byte; the final one gains usage and extra_fields.
    assert got[:-2] == body
    last = strict_json(got[-2])
    assert last["extra_fields"] == {"chunk_index": len(body), "est": False}
    assert last["usage"] == {**payload(usage_chunk)["usage"], "cost": {"total_cost": 1.5}}
    assert usages(out) == [last]
    del last["extra_fields"], last["usage"]
    assert last == payload(finish)
    assert last["choices"][0]["finish_reason"] == "stop"
    up = payload(usage_chunk)["usage"]
    assert watch.usage == Usage(**up)
    assert watch.usage_raw == json.dumps(up, separators=(",", ":")).encode()
    assert watch.final_usage() == (watch.usage, False)
    assert watch.done


# --- (b) upstream usage, client asked ----------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("by_frame", [False, True])
def test_watch_completes_usage_chunk_client_asked_for(endpoint: Endpoint, by_frame: bool) -> None:
    frames = stream(endpoint, upstream_usage=True)
    *body, finish, usage_chunk, done = frames
    assert done == DONE
    watch = new_watch(client_usage=True)
    out = run(watch, frames if by_frame else [b"".join(frames)])
    got = sse.split(out)
    assert len(got) == len(frames)
    assert got[-1] == DONE
    assert got[:-2] == [*body, finish]  # the finish chunk is not the final one: unchanged
    last = payload(got[-2])
    want = payload(usage_chunk)
    assert last["choices"] == []
    assert last["usage"] == {**want["usage"], "cost": {"total_cost": 1.5}}
    assert last["extra_fields"] == {"chunk_index": len(body) + 1, "est": False}
    del last["extra_fields"]
    del last["usage"]["cost"]
    assert last == want
    assert watch.final_usage() == (Usage(**want["usage"]), False)


def test_watch_usage_chunk_without_cost_when_unpriced() -> None:
    frames = stream("chat", upstream_usage=True)
    watch = new_watch(client_usage=True, cost=None)
    last = payload(data_frames(run(watch, [b"".join(frames)]))[-2])
    assert last["usage"] == payload(frames[-2])["usage"]
    assert "cost" not in last["usage"]
    assert last["extra_fields"] == {"chunk_index": len(frames) - 2, "est": False}


# --- (c) no upstream usage, client asked, counting -------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("by_frame", [False, True])
def test_watch_synthesizes_counted_usage_chunk(endpoint: Endpoint, by_frame: bool) -> None:
    frames = stream(endpoint, upstream_usage=False)
    *body, finish, done = frames
    assert done == DONE
    watch = new_watch(client_usage=True, count=True)
    out = run(watch, frames if by_frame else [b"".join(frames)])
    got = sse.split(out)
    assert got[-1] == DONE
    assert got[:-2] == [*body, finish]
    completion = GPT4O.count(content(frames))
    assert completion > 0
    synth = payload(got[-2])
    head = payload(finish)
    assert {k: synth[k] for k in ("id", "object", "created", "model")} == {
        k: head[k] for k in ("id", "object", "created", "model")
    }
    assert synth["choices"] == []
    assert synth["usage"] == {
        "prompt_tokens": PROMPT,
        "completion_tokens": completion,
        "total_tokens": PROMPT + completion,
        "cost": {"total_cost": 1.5},
    }
    assert synth["extra_fields"] == {"chunk_index": len(body) + 1, "est": True}
    assert watch.usage is None
    assert watch.final_usage() == (counted(completion), True)
    assert watch.final_usage() == (counted(completion), True)  # asking again counts nothing twice


def test_watch_synthesized_usage_has_no_cost_when_unpriced() -> None:
    frames = stream("chat", upstream_usage=False)
    watch = new_watch(client_usage=True, count=True, cost=None)
    synth = payload(data_frames(run(watch, [b"".join(frames)]))[-2])
    assert set(synth["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert synth["extra_fields"]["est"] is True


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_watch_counter_ignored_when_upstream_reports_usage(endpoint: Endpoint) -> None:
    frames = stream(endpoint, upstream_usage=True)
    watch = new_watch(client_usage=False, count=True)
    run(watch, [b"".join(frames)])
    assert watch.final_usage() == (Usage(**payload(frames[-2])["usage"]), False)


def test_watch_counts_reasoning_refusal_and_tool_arguments() -> None:
    pieces = ['{"city":', '"Paris"}', "thinking", "no way", "ok"]
    chunks = [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": pieces[0]}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": pieces[1]}}]}}]},
        {"choices": [{"delta": {"reasoning_content": pieces[2]}}]},
        {"choices": [{"delta": {"refusal": pieces[3]}}]},
        {"choices": [{"delta": {"reasoning": pieces[4]}, "finish_reason": "stop"}]},
    ]
    region = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + DONE
    watch = new_watch(client_usage=False, count=True)
    run(watch, [region])
    assert watch.final_usage() == (counted(GPT4O.count("".join(pieces))), True)


# --- (d) no usage, client did not ask, not counting ------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("by_frame", [False, True])
def test_watch_estimates_one_token_per_frame_without_counter(endpoint: Endpoint, by_frame: bool) -> None:
    frames = stream(endpoint, upstream_usage=False)
    *body, finish, done = frames
    assert done == DONE
    watch = new_watch(client_usage=False)
    out = run(watch, frames if by_frame else [b"".join(frames)])
    got = sse.split(out)
    assert got[:-2] == body
    assert got[-1] == DONE
    last = payload(got[-2])
    assert last.pop("extra_fields") == {"chunk_index": len(body), "est": True}
    # The estimate goes on the finish chunk, as counted usage would.
    n = len(frames) - 1
    assert last.pop("usage") == {
        "prompt_tokens": PROMPT,
        "completion_tokens": n,
        "total_tokens": PROMPT + n,
        "cost": {"total_cost": 1.5},
    }
    assert last == payload(finish)
    assert watch.usage is None
    assert watch.frames == len(frames) - 1  # data frames, [DONE] not included
    assert watch.final_usage() == (counted(len(frames) - 1), True)


def test_watch_no_usage_client_asked_without_counter_synthesizes_frame_count() -> None:
    frames = stream("text", upstream_usage=False)
    watch = new_watch(client_usage=True)
    synth = payload(data_frames(run(watch, [b"".join(frames)]))[-2])
    assert synth["usage"]["completion_tokens"] == len(frames) - 1
    assert synth["object"] == "text_completion"
    assert synth["extra_fields"]["est"] is True


# --- (e) comments between the finish chunk and [DONE] ------------------------------------


@pytest.mark.parametrize("client_usage", [False, True])
@pytest.mark.parametrize("upstream_usage", [False, True])
@pytest.mark.parametrize("by_frame", [False, True])
def test_watch_comments_pass_and_keep_final_chunk_last(
    client_usage: bool, upstream_usage: bool, by_frame: bool
) -> None:
    frames = stream("chat", upstream_usage=upstream_usage)
    with_comments = [KEEPALIVE, *frames[:-1], KEEPALIVE, KEEPALIVE, DONE]
    if upstream_usage:
        with_comments.insert(-3, KEEPALIVE)  # between the finish and the usage chunk too

    plain = run(new_watch(client_usage=client_usage, count=not upstream_usage), [b"".join(frames)])
    watch = new_watch(client_usage=client_usage, count=not upstream_usage)
    out = run(watch, with_comments if by_frame else [b"".join(with_comments)])

    got = sse.split(out)
    assert got.count(KEEPALIVE) == with_comments.count(KEEPALIVE)
    assert got[0] == KEEPALIVE
    assert got[-1] == DONE
    # Without the comments, what the client gets is what it would have got anyway.
    assert data_frames(out) == sse.split(plain)
    last = payload(data_frames(out)[-2])
    assert "extra_fields" in last
    assert watch.done


# --- (f) bytes that are not SSE ---------------------------------------------------------


@pytest.mark.parametrize("count", [False, True])
def test_watch_garbage_frame_is_a_protocol_error(count: bool) -> None:
    frames = stream("chat", upstream_usage=False)
    garbage = b"<html>oops</html>\n\n"
    watch = new_watch(client_usage=False, count=count)
    out = watch.process(b"".join(frames[:3]) + garbage + b"".join(frames[3:]))
    assert isinstance(watch.error, UpstreamProtocolError)
    # What came before the bad frame still goes out; nothing after it.
    assert out == b"".join(frames[:3])
    assert not watch.done


def test_watch_garbage_region_after_good_ones() -> None:
    frames = stream("chat", upstream_usage=True)
    watch = new_watch(client_usage=True)
    assert watch.process(b"".join(frames[:5])) == b"".join(frames[:5])
    assert watch.error is None
    assert watch.process(b"<html>oops</html>\n\n") == b""
    assert isinstance(watch.error, UpstreamProtocolError)


@pytest.mark.parametrize("frame", [b"event: ping\n\n", b"id: 3\n\n", b"retry: 10\n\n", b": comment\n\n"])
def test_watch_other_sse_fields_pass(frame: bytes) -> None:
    watch = new_watch(client_usage=False)
    assert watch.process(frame) == frame
    assert watch.error is None


# --- (g) done, and an abnormal end ------------------------------------------------------


@pytest.mark.parametrize("client_usage", [False, True])
def test_watch_done_only_after_done_marker(client_usage: bool) -> None:
    frames = stream("chat", upstream_usage=True)
    watch = new_watch(client_usage=client_usage)
    for f in frames[:-1]:
        watch.process(f)
        assert not watch.done
    watch.process(frames[-1])
    assert watch.done


def test_watch_flush_held_returns_raw_finish_chunk() -> None:
    frames = stream("chat", upstream_usage=False)
    *body, finish, done = frames
    assert done == DONE
    watch = new_watch(client_usage=False)
    out = run(watch, [b"".join(body), finish])
    assert out == b"".join(body)  # the finish chunk is held back
    assert not watch.done
    assert watch.flush_held() == finish
    assert watch.flush_held() == b""


def test_watch_flush_held_returns_raw_usage_chunk() -> None:
    frames = stream("chat", upstream_usage=True)
    *body, finish, usage_chunk, done = frames
    assert done == DONE
    watch = new_watch(client_usage=True)
    out = run(watch, [b"".join([*body, finish, usage_chunk])])
    assert out == b"".join([*body, finish])
    assert watch.flush_held() == usage_chunk  # no cost, no extra_fields: as it came
    assert watch.usage == Usage(**payload(usage_chunk)["usage"])


def test_watch_flush_held_empty_after_done() -> None:
    frames = stream("chat", upstream_usage=True)
    watch = new_watch(client_usage=True)
    run(watch, [b"".join(frames)])
    assert watch.flush_held() == b""


def test_watch_several_finish_chunks_only_last_is_final() -> None:
    a = b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    more = b'data: {"id":"x","choices":[{"index":1,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    b = b'data: {"id":"x","choices":[{"index":1,"delta":{},"finish_reason":"length"}]}\n\n'
    for regions in ([a + more + b + DONE], [a, more, b, DONE], [a, more, b + DONE]):
        got = sse.split(run(new_watch(client_usage=False), regions))
        # Order kept: the first finish chunk, released as it came, before what follows it.
        assert got[:2] == [a, more]
        assert payload(got[2])["extra_fields"] == {"chunk_index": 2, "est": True}
        assert got[3] == DONE


# --- any split through the Framer -------------------------------------------------------

SCENARIOS = [
    # (endpoint, upstream_usage, client_usage, count, comments)
    (endpoint, upstream_usage, client_usage, count, comments)
    for endpoint in ENDPOINTS
    for upstream_usage in (False, True)
    for client_usage in (False, True)
    for count in (False, True)
    for comments in (False, True)
]


def scenario_frames(endpoint: Endpoint, upstream_usage: bool, comments: bool) -> list[bytes]:
    frames = stream(endpoint, upstream_usage=upstream_usage)
    if comments:
        frames = [KEEPALIVE, *frames[:3], KEEPALIVE, *frames[3:-1], KEEPALIVE, DONE]
    return frames


def reference(scenario: tuple[Endpoint, bool, bool, bool, bool]) -> tuple[bytes, StreamWatch]:
    endpoint, upstream_usage, client_usage, count, comments = scenario
    watch = new_watch(client_usage=client_usage, count=count)
    return run(watch, [b"".join(scenario_frames(endpoint, upstream_usage, comments))]), watch


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted(p % (len(data) + 1) for p in points)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


@given(
    scenario=st.sampled_from(SCENARIOS),
    points=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=30),
    crlf=st.booleans(),
)
def test_watch_output_independent_of_splitting(
    scenario: tuple[Endpoint, bool, bool, bool, bool], points: list[int], crlf: bool
) -> None:
    endpoint, upstream_usage, client_usage, count, comments = scenario
    want, ref = reference(scenario)
    data = b"".join(scenario_frames(endpoint, upstream_usage, comments))
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    framer = sse.Framer()
    watch = new_watch(client_usage=client_usage, count=count)
    out = []
    for chunk in cut(data, points):
        region = framer.feed(chunk)
        if region:
            out.append(watch.process(region))
    assert watch.error is None
    assert framer.pending == b""
    assert b"".join(out) == want
    assert watch.done
    assert watch.usage == ref.usage
    assert watch.frames == ref.frames
    assert watch.final_usage() == ref.final_usage()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_watch_frame_by_frame_equals_whole(scenario: tuple[Endpoint, bool, bool, bool, bool]) -> None:
    endpoint, upstream_usage, client_usage, count, comments = scenario
    want, ref = reference(scenario)
    watch = new_watch(client_usage=client_usage, count=count)
    assert run(watch, scenario_frames(endpoint, upstream_usage, comments)) == want
    assert watch.final_usage() == ref.final_usage()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_watch_usage_exactly_once_on_final_chunk(scenario: tuple[Endpoint, bool, bool, bool, bool]) -> None:
    """Whatever the upstream reports and the client asks, one data frame carries usage:
    the final one, with extra_fields; the finish chunk when the client did not ask."""
    client_usage = scenario[2]
    out, watch = reference(scenario)
    final = data_frames(out)[-2]
    (got,) = usages(out)
    assert got == strict_json(final)
    assert "extra_fields" in got
    assert bool(got["choices"]) is not client_usage
    usage, estimated = watch.final_usage()
    assert (got["usage"]["prompt_tokens"], got["usage"]["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert got["extra_fields"]["est"] is estimated


def openai_shaped(frames: list[bytes]) -> list[bytes]:
    """The mock's frames as OpenAI sends them when usage is asked for: ``"usage":null``
    on every chunk but the usage-only one."""
    return [f if f == DONE or b'"usage"' in f else f[:-3] + b',"usage":null}\n\n' for f in frames]


@pytest.mark.parametrize("client_usage", [False, True])
def test_watch_openai_null_usage_replaced_not_repeated(client_usage: bool) -> None:
    frames = openai_shaped(stream("chat", upstream_usage=True))
    *body, finish, usage_chunk, _ = frames
    assert finish.endswith(b'"usage":null}\n\n')
    out = run(new_watch(client_usage=client_usage), [b"".join(frames)])
    (got,) = usages(out)  # strict: one "usage" key per frame
    assert got["usage"] == {**payload(usage_chunk)["usage"], "cost": {"total_cost": 1.5}}
    if client_usage:
        assert data_frames(out)[:-2] == [*body, finish]
    else:
        assert data_frames(out)[:-2] == body
        assert got["choices"] == payload(finish)["choices"]
        # Spliced in place of null: the finish chunk's bytes up to it are the upstream's.
        assert data_frames(out)[-2].startswith(finish[: -len(b'"usage":null}\n\n')])


@pytest.mark.parametrize("client_usage", [False, True])
def test_watch_usage_on_upstream_finish_chunk_stays_there(client_usage: bool) -> None:
    finish = (
        b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    )
    out = run(new_watch(client_usage=client_usage), [finish + DONE])
    (got,) = usages(out)
    assert got["choices"][0]["finish_reason"] == "stop"
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": {"total_cost": 1.5}}
    assert got["extra_fields"] == {"chunk_index": 0, "est": False}


@pytest.mark.parametrize("client_usage", [False, True])
def test_watch_usage_on_finish_chunk_and_in_usage_chunk_reaches_client_once(client_usage: bool) -> None:
    finish = (
        b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    )
    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    for regions in ([finish + usage + DONE], [finish, usage, DONE]):
        out = run(new_watch(client_usage=client_usage), regions)
        (got,) = usages(out)
        assert got["choices"][0]["finish_reason"] == "stop"
        assert got["usage"]["cost"] == {"total_cost": 1.5} and "extra_fields" in got


def test_watch_usage_chunk_before_finish_client_did_not_ask() -> None:
    # An upstream that sends its usage before its finish chunk: relayed as it came, once.
    head = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    finish = b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    for regions in ([head + usage + finish + DONE], [head, usage, finish, DONE]):
        out = run(new_watch(client_usage=False), regions)
        assert len(usages(out)) == 1
        assert "extra_fields" in strict_json(data_frames(out)[-2])


@pytest.mark.parametrize("upstream_usage", [False, True])
def test_watch_no_finish_chunk_gets_a_usage_chunk(upstream_usage: bool) -> None:
    # No finish chunk to carry it (a server that never sets finish_reason): a chunk of its own.
    chunk = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    watch = new_watch(client_usage=False)
    out = run(watch, [chunk + (usage if upstream_usage else b"") + DONE])
    (got,) = usages(out)
    assert got["choices"] == [] and got["extra_fields"] == {"chunk_index": 1, "est": not upstream_usage}
    assert got["usage"]["completion_tokens"] == 1
    assert data_frames(out)[0] == chunk


# --- what looks like bugs ----------------------------------------------------------------


def test_watch_frame_estimate_ignores_comments() -> None:
    frames = stream("chat", upstream_usage=False)
    with_comments = [*frames[:-1], KEEPALIVE, KEEPALIVE, KEEPALIVE, DONE]
    watch = new_watch(client_usage=False)
    run(watch, [b"".join(with_comments)])
    assert watch.frames == len(frames) - 1
    assert watch.final_usage() == (counted(len(frames) - 1), True)


@pytest.mark.parametrize(
    "frame",
    [
        b'data: {"choices":[],"usage":{"prompt_tokens":"ten"}}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":1}\n\n',
    ],
)
def test_watch_malformed_usage_chunk_is_a_protocol_error(frame: bytes) -> None:
    watch = new_watch(client_usage=True)
    out = watch.process(frame)
    assert isinstance(watch.error, UpstreamProtocolError) or out == frame


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def strict_json(frame: bytes) -> Any:
    data = sse.data_of(frame)
    assert data is not None
    return json.loads(data, object_pairs_hook=_no_duplicate_keys)


def test_watch_final_chunk_with_upstream_extra_fields_has_one_key() -> None:
    finish = b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"extra_fields":{"a":1}}\n\n'
    got = sse.split(run(new_watch(client_usage=False), [finish + DONE]))
    assert strict_json(got[0])["extra_fields"] == {"chunk_index": 0, "est": True}


def test_watch_usage_with_upstream_cost_keeps_upstream_figure() -> None:
    # The upstream's own cost (what it billed, e.g. OpenRouter) is kept, once.
    finish = b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"cost":0.1}}\n\n'
    got = sse.split(run(new_watch(client_usage=True), [finish + usage + DONE]))
    assert strict_json(got[1])["usage"]["cost"] == 0.1


# --- splice_object and add_cost ----------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "want"),
    [
        (b"data: {}\n\n", b'data: {"k":[1]}\n\n'),
        (b"data: { }\n\n", b'data: {"k":[1]}\n\n'),
        (b"data: {\n}\n\n", b'data: {"k":[1]}\n\n'),
        (b'data: {"a":1}\n\n', b'data: {"a":1,"k":[1]}\n\n'),
        (b'data: {"a":1 }\n\n', b'data: {"a":1,"k":[1]}\n\n'),
        (b'data: {"a":1}  \n\n', b'data: {"a":1,"k":[1]}\n\n'),
        (b'data: {"a":{"b":{}}}\n\n', b'data: {"a":{"b":{}},"k":[1]}\n\n'),
    ],
)
def test_splice_object_adds_key(frame: bytes, want: bytes) -> None:
    out = splice_object(frame, b"k", b"[1]")
    assert out == want
    assert payload(out)["k"] == [1]


def test_splice_object_keeps_existing_members_byte_for_byte() -> None:
    frame = stream("chat", upstream_usage=True)[-3]
    out = splice_object(frame, b"extra_fields", b"{}")
    assert out.startswith(frame[: frame.rindex(b"}")])
    assert payload(out) == {**payload(frame), "extra_fields": {}}


@pytest.mark.parametrize(
    ("body", "usage_raw", "want"),
    [
        (b'{"usage":{}}', b"{}", b'{"usage":{"cost":7}}'),
        (b'{"usage":{ }}', b"{ }", b'{"usage":{"cost":7}}'),
        (b'{"usage":{"a":1}}', b'{"a":1}', b'{"usage":{"a":1,"cost":7}}'),
        (b'{"usage": { "a": 1 } }', b'{ "a": 1 }', b'{"usage": { "a": 1,"cost":7} }'),
        (b'data: {"usage":{"a":1}}\n\n', b'{"a":1}', b'data: {"usage":{"a":1,"cost":7}}\n\n'),
        # The last occurrence is the usage object (it follows choices).
        (b'{"x":{"a":1},"usage":{"a":1}}', b'{"a":1}', b'{"x":{"a":1},"usage":{"a":1,"cost":7}}'),
        # An empty usage first, the same bytes later inside a string: the usage gets it.
        (
            b'{"usage":{},"choices":[{"function":{"arguments":"{}"}}]}',
            b"{}",
            b'{"usage":{"cost":7},"choices":[{"function":{"arguments":"{}"}}]}',
        ),
        (b'{"usage" : {} ,"a":"{}"}', b"{}", b'{"usage" : {"cost":7} ,"a":"{}"}'),
    ],
)
def test_add_cost_inside_usage(body: bytes, usage_raw: bytes, want: bytes) -> None:
    out = add_cost(body, usage_raw, b"7")
    assert out == want
    assert json.loads(out.removeprefix(b"data: "))["usage"]["cost"] == 7


@pytest.mark.parametrize(
    ("body", "usage_raw"),
    [
        (b'{"usage":{"a":1}}', b'{"a":2}'),  # not found
        (b'{"usage":{"a":1}}', b""),  # nothing to find
        (b'{"usage":{"a":1}}', b"  "),
        (b'{"usage":{"a":1}}', b'"a"'),  # not an object
    ],
)
def test_add_cost_leaves_body_unchanged(body: bytes, usage_raw: bytes) -> None:
    assert add_cost(body, usage_raw, b"7") == body


@pytest.mark.parametrize(
    "frame",
    [
        b'data: {"a":1,"choices":[],"usage":null}\n\n',  # OpenAI's: null replaced in one join
        b'data: {"a":1,"choices":[]}\n\n',  # choices last: one join
        b'data: {"a":1}\n\n',
        b'data: {"usage":null,"a":1}\n\n',
        b'data: {"a":1, "usage": null}\n\n',
        b'data: {"a":1,"choices":[] }\n\n',
        b'data: {"a":1,"extra_fields":{"b":2},"choices":[]}\n\n',  # behind another gateway
        b'data: {"a":1,"usage":null,"choices":[]}\n\n',
        b'data: {"choices":[{"delta":{"content":"\\"usage\\""}}]}\n\n',
    ],
)
def test_with_usage_one_join_equals_general_splice(frame: bytes) -> None:
    out = with_usage(frame, b'{"t":1}', b'{"e":2}')
    general = splice_object(splice_object(frame, b"usage", b'{"t":1}'), b"extra_fields", b'{"e":2}')
    assert strict_json(out) == strict_json(general) == {**payload(frame), "usage": {"t": 1}, "extra_fields": {"e": 2}}


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b'{"a":1}', b'{"a":1,"cost":7}'),
        (b"{}", b'{"cost":7}'),
        (b"{ }", b'{"cost":7}'),
        (b'{ "a": 1 }', b'{ "a": 1,"cost":7}'),
        (b'{"a":1,"cost":0.1}', b'{"a":1,"cost":0.1}'),  # the upstream's own figure kept
    ],
)
def test_with_cost_equals_add_cost(raw: bytes, want: bytes) -> None:
    assert with_cost(raw, b"7") == want
    assert json.loads(with_cost(raw, b"7")) == json.loads(add_cost(raw, raw, b"7"))
    assert with_cost(raw, None) == raw


def test_add_cost_on_mock_usage_chunk() -> None:
    chunk = stream("chat", upstream_usage=True)[-2]
    raw = json.dumps(payload(chunk)["usage"], separators=(",", ":")).encode()
    out = add_cost(chunk, raw, COST)
    assert payload(out)["usage"] == {**payload(chunk)["usage"], "cost": {"total_cost": 1.5}}
    assert payload(out)["choices"] == []


# --- in-band error frames --------------------------------------------------------------

ERROR_FRAME = b'data: {"error":{"message":"Incorrect API key provided: sk-watch-key-0123456789"}}\n\n'


@pytest.mark.parametrize("count", [False, True])
@pytest.mark.parametrize("split_at", [None, 1, 2, 3])
def test_watch_error_frames_are_redacted_however_they_are_read(count: bool, split_at: int | None) -> None:
    """An upstream's error frame reaches the client through ``redact`` whether it comes
    alone, first, in the middle or last of a coalesced read; content chunks do not."""
    frames = stream("chat", upstream_usage=False)[:3]
    frames = [*frames[:2], ERROR_FRAME, *frames[2:]]
    regions = [b"".join(frames)] if split_at is None else [b"".join(frames[:split_at]), b"".join(frames[split_at:])]
    seen: list[bytes] = []

    def redact(frame: bytes) -> bytes:
        seen.append(frame)
        return frame.replace(b"sk-watch-key-0123456789", b"[redacted]")

    counter = CompletionCounter(GPT4O) if count else None
    watch = StreamWatch(client_usage=False, counter=counter, finish=finisher(), redact=redact)
    out = run(watch, regions)
    assert b"sk-watch-key" not in out and out.count(b"[redacted]") == 1
    assert seen == [ERROR_FRAME]
