"""CI runs the load benchmark quickly: real processes, real wrk; the figures are
meaningless at this size, but every ratio must be produced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(
    (shutil.which("wrk") is None or shutil.which("h2load") is None) and not os.environ.get("CI"),
    reason="wrk or h2load not installed (CI installs them)",
)
@pytest.mark.timeout(180)
def test_bench_load_quick_produces_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    root = Path(__file__).parents[2]
    r = subprocess.run(
        [sys.executable, "-m", "bench.load", "--quick", "--json", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    cells = result["cells"]
    assert {(c["contender"], c["scenario"]) for c in cells} >= {
        (who, what)
        for who in ("direct", "floor", "floor+pool", "gateway", "gateway+pool")
        for what in ("unary", "stream", "stream paced 5 ms")
    }
    assert all(c["rps"] > 0 and c["errors"] == 0 and c["cpu_us_per_req"] > 0 for c in cells)
    for name in ("direct", "floor", "gateway"):
        facts = result["facts"][name]
        assert facts["startup_s"] > 0 and facts["rss_after_mb"] > 0 and facts["first_chunk_ms"] > 0
    assert "x floor" in r.stdout
