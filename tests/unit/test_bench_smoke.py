"""CI runs the micro benchmarks quickly: they must run and print every case; what they
time must be what the gateway does."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.micro import __main__ as micro_main
from bench.micro import routing, stream
from bench.micro.pipeline import pipeline


def test_bench_micro_quick_prints_every_case() -> None:
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "bench.micro", "--quick"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows = [line.strip().rsplit(None, 1) for line in out.stdout.splitlines() if line.startswith("  ")]
    expected = [name for _, cases, *_ in micro_main.MODULES for name in cases]
    assert [r[0] for r in rows] == expected
    assert all(float(r[1]) > 0 for r in rows)


def test_bench_stream_relay_output_equals_input_but_usage_chunk() -> None:
    watch = stream.StreamWatch(client_usage=False, counter=None, finish=stream.FINISH)
    feed = stream.Framer().feed
    out = b"".join(watch.process(feed(f)) for f in stream.FRAMES)
    # Everything but the usage-only chunk, the final chunk with extra_fields added.
    assert out.startswith(b"".join(stream.FRAMES[:-3]))
    assert b'"choices":[]' not in out and out.endswith(b'"chunk_index":198}}\n\ndata: [DONE]\n\n')


def test_bench_pipeline_produces_enriched_answer() -> None:
    body = pipeline()
    assert b'"extra_fields":{"request_type":"chat_completion","provider":"mock"' in body
    assert b'"cost":{"input_tokens_cost":' in body


def test_bench_weighted_key_choice_follows_weights() -> None:
    # Keys a and b weigh 3 and 1: about 3 in 4 draws pick a.
    picks = Counter(routing.WEIGHTED.keys.choose("gpt-4o") for _ in range(8000))
    assert set(picks) == {0, 1}
    assert 0.70 < picks[0] / 8000 < 0.80
