"""CI runs the stream benchmark quickly: real processes (the mock, the pipe, the gateway)
and the real client; the figures are meaningless at this size, but every server must relay
every event and every figure must be produced."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.load import MESSAGES
from bench.streams import run_streams, servers

ROOT = Path(__file__).parents[2]


def _run(mode: str, out: Path) -> tuple[dict[str, Any], str]:
    r = subprocess.run(
        [sys.executable, "-m", "bench.streams", mode, "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text()), r.stdout


@pytest.mark.timeout(120)
def test_bench_streams_cost_quick_relays_every_event(tmp_path: Path) -> None:
    result, stdout = _run("cost", tmp_path / "cost.json")
    runs = result["runs"]
    assert {r["server"] for r in runs} == {"direct", "pipe", "gateway"}
    # --quick: 10 streams of 3 and of 8 chunks; a stream is its chunks plus the role,
    # finish, usage and [DONE] frames.
    for r in runs:
        assert r["failed"] == 0 and r["events"] == r["streams"] * (r["chunks"] + 4), r
        # Not > 0: on a loaded machine events coalesce into one read, and the median gap
        # a client sees may be 0 (a timing outcome, not a harness fault).
        assert r["p50_itl_ms"] >= 0 and r["wall_s"] > 0
    assert [row["server"] for row in result["rows"]] == ["direct", "pipe", "gateway"]
    assert "x pipe" in stdout


@pytest.mark.timeout(120)
def test_bench_streams_capacity_quick_reports_each_server(tmp_path: Path) -> None:
    result, stdout = _run("capacity", tmp_path / "capacity.json")
    assert set(result["max_streams"]) == {"pipe", "gateway"}
    # capacity's upstream is bench.pacer: the mock's frames, the same count per stream.
    for r in result["runs"]:
        assert r["failed"] == 0 and r["events"] == r["streams"] * (r["chunks"] + 4), r
    assert "max concurrent streams, gateway:" in stdout


@pytest.mark.timeout(60)
def test_bench_streams_pacer_paces_a_request_without_mock_field_like_the_run(tmp_path: Path) -> None:
    # A peer that drops the body's "mock" field (Portkey) gets the pacer's command-line
    # length and pace: they must be the run's, or that peer relays other streams than the rest.
    with servers(tmp_path, ("direct",), "pacer", itl_ms=30.0, tokens=7) as (ts, _):
        t = ts["direct"]
        body = {"model": t.model, "messages": MESSAGES, "stream": True}
        frames: list[float] = []
        with httpx.stream("POST", t.url + "/v1/chat/completions", json=body, timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    frames.append(time.perf_counter())
    assert len(frames) == 7 + 4  # role, 7 tokens, finish, usage, [DONE]
    assert frames[-1] - frames[0] >= 7 * 0.030 * 0.9


@pytest.mark.timeout(60)
def test_bench_pacer_never_repeats_a_content_chunk_back_to_back(tmp_path: Path) -> None:
    # LiteLLM cuts a stream with "The model is repeating the same chunk" after 100 identical
    # content chunks in a row: the pacer's 200-token streams must not look like a loop.
    with servers(tmp_path, ("direct",), "pacer") as (ts, _):
        t = ts["direct"]
        body = {"model": t.model, "messages": MESSAGES, "stream": True, "mock": {"tokens": 150, "itl_ms": 0}}
        contents: list[str] = []
        with httpx.stream("POST", t.url + "/v1/chat/completions", json=body, timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        if choice["delta"].get("content"):
                            contents.append(choice["delta"]["content"])
    assert len(contents) == 150
    assert all(a != b for a, b in itertools.pairwise(contents))


@pytest.mark.timeout(60)
def test_bench_streams_run_names_streams_cut_by_its_timeout(tmp_path: Path) -> None:
    # A stream the harness cuts at its timeout counts as failed; the run must say it was the
    # harness, not the server, and that the streams came out short.
    with servers(tmp_path, ("direct",), "pacer") as (ts, pacer):
        run = run_streams(ts["direct"], "direct", n=2, chunks=5, itl_ms=1000, mock_pid=pacer, timeout_s=1.0)
    assert run.failed == 2
    assert "2 streams still open at the 1 s timeout, cut" in run.notes
    assert any("not 2 x 9" in note for note in run.notes)
