"""CI runs the micro benchmarks quickly: they must run and print every case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.micro import CASES, pipeline


def test_bench_micro_quick_prints_every_case() -> None:
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "bench.micro", "--quick"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()[1:]
    assert [r.rsplit(None, 1)[0].strip() for r in rows] == list(CASES)
    assert all(float(r.rsplit(None, 1)[1]) > 0 for r in rows)


def test_bench_micro_stream_quick_prints_every_case() -> None:
    from bench.micro_stream import CASES as STREAM_CASES

    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "bench.micro_stream", "--quick"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()[1:]
    assert [r.rsplit(None, 2)[0].strip() for r in rows] == list(STREAM_CASES)


def test_bench_stream_relay_output_equals_input_but_usage_chunk() -> None:
    from bench.micro_stream import FINISH, FRAMES
    from gateway.relay.sse import Framer
    from gateway.relay.watch import StreamWatch

    watch = StreamWatch(client_usage=False, counter=None, finish=FINISH)
    feed = Framer().feed
    out = b"".join(watch.process(feed(f)) for f in FRAMES)
    # Everything but the usage-only chunk, the final chunk with extra_fields added.
    assert out.startswith(b"".join(FRAMES[:-3]))
    assert b'"choices":[]' not in out and out.endswith(b'"chunk_index":198}}\n\ndata: [DONE]\n\n')


def test_bench_pipeline_produces_enriched_answer() -> None:
    body = pipeline()
    assert b'"extra_fields":{"request_type":"chat_completion","provider":"mock"' in body
