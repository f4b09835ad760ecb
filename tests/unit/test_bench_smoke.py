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


def test_bench_pipeline_produces_enriched_answer() -> None:
    body = pipeline()
    assert b'"extra_fields":{"request_type":"chat_completion","provider":"mock"' in body
