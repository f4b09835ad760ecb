"""The per-chunk streaming path: SSE framing (relay/sse.py), usage watching and the final
chunk (relay/watch.py), token counting when the upstream reports none.

A 200-chunk OpenAI chat stream exactly as OpenAI sends it with include_usage (every chunk
carries "usage":null; a usage-only chunk before [DONE]), one upstream read per chunk (the
worst case) or coalesced into 4 reads (a loaded server). Figures are µs per chunk;
compare each row with the bare pass-through of the same bytes.

The translated rows relay the same answer between dialects, one read per event, as
relay.stream does: an Anthropic or Gemini upstream's 200 events (bench.micro.dialects)
framed and translated (relay.translate.UpstreamStream), then framed and watched as chat
chunks; or the OpenAI stream framed and watched, then translated for an Anthropic,
Gemini or Responses API client (relay.translate.client_stream).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from bench.micro import Cases, main_for
from bench.micro.dialects import anthropic_stream, gemini_stream
from bench.micro.fixtures import LEDGER, TABLE, table_with
from gateway.accounting.tokens import CompletionCounter, Tokenizers
from gateway.accounting.usage import Usage
from gateway.config import ProviderConfig
from gateway.providers.registry import DIALECTS
from gateway.relay import translate
from gateway.relay.call import Call
from gateway.relay.native import _Watch as NativeWatch
from gateway.relay.sse import Framer
from gateway.relay.watch import Finisher, StreamWatch, splice_object

N_CHUNKS = 200
_HEAD = b'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,'
_HEAD += b'"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf",'
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")


def openai_stream() -> list[bytes]:
    frames = [
        _HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    ]
    for i in range(N_CHUNKS - 3):
        word = msgspec.json.encode(WORDS[i % len(WORDS)])
        frames.append(
            _HEAD
            + b'"choices":[{"index":0,"delta":{"content":'
            + word
            + b'},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
        )
    frames.append(
        _HEAD + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
    )
    frames.append(
        _HEAD + b'"choices":[],"usage":{"prompt_tokens":19,"completion_tokens":197,"total_tokens":216,'
        b'"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
    )
    frames.append(b"data: [DONE]\n\n")
    return frames


FRAMES = openai_stream()
TOKENIZERS = Tokenizers()
FINISH = Finisher(
    extra=lambda i, est, last: b'{"request_type":"chat_completion_stream","provider":"openai","chunk_index":%d}' % i,
    cost=lambda u: b'{"input_tokens_cost":1e-05,"output_tokens_cost":2e-05,"total_cost":3e-05}',
    counted=lambda n: Usage(prompt_tokens=19, completion_tokens=n, total_tokens=19 + n),
)


def passthrough() -> None:
    sink = []
    write = sink.append
    for chunk in FRAMES:
        write(chunk)


# The same stream as a loaded server reads it: coalesced into 4 reads.
COALESCED = [b"".join(FRAMES[i : i + 50]) for i in range(0, len(FRAMES), 50)]


def relay(*, count: bool, reads: list[bytes] = FRAMES) -> Callable[[], None]:
    def run() -> None:
        sink = []
        write = sink.append
        counter = CompletionCounter(TOKENIZERS.get("o200k_base")) if count else None
        watch = StreamWatch(client_usage=False, counter=counter, finish=FINISH)
        feed, process = Framer().feed, watch.process
        for chunk in reads:
            region = feed(chunk)
            if region:
                out = process(region)
                if out:
                    write(out)
        watch.final_usage()

    return run


RESPONSES_REQUEST = b'{"model":"gpt-4o","input":"Tell me a story.","stream":true}'
ANTHROPIC_REQUEST = (
    b'{"model":"gpt-4o","max_tokens":1024,"messages":[{"role":"user","content":"Tell me a story."}],"stream":true}'
)
GEMINI_REQUEST = b'{"contents":[{"role":"user","parts":[{"text":"Tell me a story."}]}]}'
UPSTREAMS = table_with(
    anthropic=ProviderConfig(dialect="anthropic", base_url="https://api.anthropic.com"),
    gemini=ProviderConfig(dialect="gemini", base_url="https://generativelanguage.googleapis.com"),
)


def from_upstream(model: str, reads: list[bytes]) -> Callable[[], None]:
    """An OpenAI client's stream from a provider of another dialect: each read framed and
    translated into chat chunks, which are framed and watched as an OpenAI upstream's."""
    target = UPSTREAMS.resolve(model)

    def run() -> None:
        sink = []
        write = sink.append
        watch = StreamWatch(client_usage=False, counter=None, finish=FINISH)
        decode = translate.UpstreamStream(target)
        translated, feed, process = decode.feed, Framer().feed, watch.process
        for chunk in reads:
            region = feed(translated(chunk))
            if region:
                out = process(region)
                if out:
                    write(out)
        tail = decode.close()  # Gemini's usage chunk and [DONE] come out at EOF
        if tail:
            write(process(feed(tail)))
        watch.final_usage()

    return run


def to_client(dialect: str, request: bytes) -> Callable[[], None]:
    """A client of another dialect at its SDK route, the upstream speaking OpenAI: the
    chat relay, then each region's chunks in the client's dialect."""
    client = DIALECTS[dialect]

    def run() -> None:
        sink = []
        write = sink.append
        watch = StreamWatch(client_usage=True, counter=None, finish=FINISH)
        feed, process = Framer().feed, watch.process
        client_feed = translate.client_stream(client, request=request).feed
        for chunk in FRAMES:
            region = feed(chunk)
            if region:
                out = process(region)
                if out:
                    write(client_feed(out))
        watch.final_usage()

    return run


ANTHROPIC_EVENTS = anthropic_stream()
GEMINI_FRAMES = gemini_stream()


def responses_events() -> list[bytes]:
    """The same answer as a native Responses API event stream (what OpenAI sends at
    /v1/responses): the lifecycle events, one output_text.delta per word, the terminal
    response.completed with usage."""
    head = b'"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"gpt-4o"}'
    frames = [
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,%s}\n\n' % head,
        b'event: response.in_progress\ndata: {"type":"response.in_progress","sequence_number":1,%s}\n\n' % head,
    ]
    for i in range(N_CHUNKS - 3):
        word = msgspec.json.encode(WORDS[i % len(WORDS)])
        frames.append(
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
            b'"item_id":"msg_1","output_index":0,"content_index":0,"delta":%s,"logprobs":[]}\n\n' % (i + 2, word)
        )
    frames.append(
        b'event: response.completed\ndata: {"type":"response.completed","sequence_number":%d,"response":'
        b'{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-4o","output":[],'
        b'"usage":{"input_tokens":19,"input_tokens_details":{"cached_tokens":0},"output_tokens":197,'
        b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":216}}}\n\n' % N_CHUNKS
    )
    return frames


EVENTS = responses_events()


def native_responses() -> None:
    """A Responses API stream relayed natively (relay.native): framed, each region
    counted and looked at for its terminal event, which gets usage.cost and extra_fields."""
    target = TABLE.resolve("mock/gpt-4o")
    call = Call(
        endpoint="chat",
        request_type="responses_stream",
        requested="gpt-4o",
        targets=[(target, b"")],
        body=b"",
        t0=0.0,
        client_usage=True,
        ledger=LEDGER,
    )
    sink = []
    write = sink.append
    watch = NativeWatch(call, target, b"")
    feed, region_of = Framer().feed, watch.region
    for chunk in EVENTS:
        region = feed(chunk)
        if region:
            write(region_of(region))


_extra = msgspec.json.Encoder().encode
_dict = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def splice_every_chunk() -> None:
    """extra_fields on every chunk, spliced into the frame bytes."""
    sink = []
    for i, chunk in enumerate(FRAMES[:-1]):
        sink.append(splice_object(chunk, b"extra_fields", b'{"chunk_index":%d,"latency":1.5}' % i))


def reencode_every_chunk() -> None:
    """extra_fields on every chunk, by decoding and re-encoding each frame."""
    sink = []
    for i, chunk in enumerate(FRAMES[:-1]):
        fields = _dict(chunk[6:-2])
        fields["extra_fields"] = msgspec.Raw(b'{"chunk_index":%d,"latency":1.5}' % i)
        sink.append(b"data: " + _extra(fields) + b"\n\n")


CASES: Cases = {
    "bare pass-through (baseline)": passthrough,
    "frame + watch, upstream reports usage": relay(count=False),
    "frame + watch + count tokens (no usage)": relay(count=True),
    "frame + watch, 4 coalesced reads": relay(count=False, reads=COALESCED),
    "(a) Anthropic events -> chat chunks": from_upstream("anthropic/claude-sonnet-4-5", ANTHROPIC_EVENTS),
    "(b) Gemini frames -> chat chunks": from_upstream("gemini/gemini-2.5-flash", GEMINI_FRAMES),
    "(c) chat chunks -> Anthropic events": to_client("anthropic", ANTHROPIC_REQUEST),
    "(d) chat chunks -> Gemini frames": to_client("gemini", GEMINI_REQUEST),
    "(e) chat chunks -> Responses events": to_client("responses", RESPONSES_REQUEST),
    "Responses events relayed natively (frame + watch)": native_responses,
    "extra_fields on every chunk: splice": splice_every_chunk,
    "extra_fields on every chunk: re-encode": reencode_every_chunk,
}

if __name__ == "__main__":
    TOKENIZERS.get("o200k_base")  # loaded once, outside the timings
    main_for("stream: per relayed chunk", CASES, per=len(FRAMES), unit="µs/chunk", number=100)
