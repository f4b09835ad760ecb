"""Micro benchmarks of the per-chunk streaming path, in-process, no sockets.

    .venv/bin/python -m bench.micro_stream            # full run (~15 s)
    .venv/bin/python -m bench.micro_stream --quick    # smoke run (CI)

A 200-chunk OpenAI chat stream as OpenAI sends it with include_usage (every chunk
carries "usage":null; a usage-only chunk before [DONE]), fed one upstream read per
chunk (the worst case: coalesced reads cost less). Each figure is the median over
rounds of the time per chunk, in microseconds; "added" is over the bare pass-through
measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import msgspec

from gateway.accounting.tokens import CompletionCounter, Tokenizers
from gateway.accounting.usage import Usage
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
    extra=lambda i, est: b'{"request_type":"chat_completion_stream","provider":"openai","chunk_index":%d}' % i,
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


def measure_all(cases: dict[str, Callable[[], None]], *, rounds: int, number: int) -> dict[str, float]:
    """Median µs per chunk of each case; the cases take turns within every round, so
    a noisy neighbour slows them alike and their differences stay comparable."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t) / number / len(FRAMES) * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


CASES: dict[str, Callable[[], None]] = {
    "bare pass-through (baseline)": passthrough,
    "frame + watch, upstream reports usage": relay(count=False),
    "frame + watch + count tokens (no usage)": relay(count=True),
    "frame + watch, 4 coalesced reads": relay(count=False, reads=COALESCED),
    "extra_fields on every chunk: splice": splice_every_chunk,
    "extra_fields on every chunk: re-encode": reencode_every_chunk,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few iterations: checks it runs, figures meaningless")
    args = p.parse_args()
    rounds, number = (3, 2) if args.quick else (31, 100)
    TOKENIZERS.get("o200k_base")  # loaded once, outside the timings
    result = measure_all(CASES, rounds=rounds, number=number)
    base = result["bare pass-through (baseline)"]
    print(f"{'case (per chunk)':<46} {'µs':>7} {'added':>7}")
    for name, t in result.items():
        print(f"{name:<46} {t:>7.3f} {t - base:>7.3f}")


if __name__ == "__main__":
    main()
