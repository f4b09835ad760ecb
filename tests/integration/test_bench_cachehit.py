"""CI runs the cache-hit benchmark quickly: the floor, the gateway and the gateway with its
cache on (direct and semantic hits), real processes under wrk; the figures are
meaningless at this size, but every contender must answer every request of both
scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(180)
def test_bench_cachehit_quick_answers_everything(tmp_path: Path) -> None:
    out = tmp_path / "cells.json"
    r = subprocess.run(
        [sys.executable, "-m", "bench.cachehit", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    cells = json.loads(out.read_text())
    assert {(c["scenario"], c["contender"]) for c in cells} == {
        (s, n) for s in ("unary", "stream") for n in ("floor+pool", "gateway", "gateway cached", "gateway semantic")
    }
    assert all(c["errors"] == 0 and c["rps"] > 0 for c in cells), cells
    assert "gateway cached" in r.stdout
