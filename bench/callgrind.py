"""User-space instructions per request of the gateway, under callgrind: the noise-free
measure of the hot path (CPU time on this shared machine moves ±10-25% between rounds;
instruction counts repeat to ~0.1%).

Each tree given (a checkout of the gateway: the working tree, or ``git worktree add`` of
another commit) is measured in turn, alternating, against one ``gateway mock`` upstream:
``gateway serve`` (one worker, the pool client, pricing and the access log on) runs under ``valgrind
--tool=callgrind --instr-atstart=no`` on CPU 1, wrk drives it from CPU 0 with 16
connections; after a warm-up, instrumentation is switched on for ``--seconds``, and the
instructions counted are divided by the requests wrk completed in that window.

    python -m bench.callgrind --tree . --tree /tmp/gateway-base --rounds 2

``--cache`` turns the response cache on, so every request after the first is answered
from it (a direct hit); ``--semantic``, from it through a semantic lookup (every request
embedded through the mock first). ``--stream-tokens 20,120`` measures streamed requests
instead (``"stream": true``, the mock sending that many content chunks), once per count,
and prints the instructions per relayed chunk: the difference between the two counts'
per-request figures divided by the difference in chunks, so the per-request work cancels
out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import MESSAGES
from bench.targets import ROOT, free_port, python_module, spawn

GATEWAY_CPU, LOADGEN_CPU = 1, 0
EMBEDDER = "up/text-embedding-3-small"  # --semantic: the mock's embeddings


def _wrk(url: str, script: Path, seconds: int) -> int:
    out = subprocess.run(
        ["taskset", "-c", str(LOADGEN_CPU), "wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    ).stdout
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise RuntimeError(f"unreadable wrk output:\n{out}")
    return int(m.group(1))


def _instructions(folder: Path, pid: int) -> int:
    """Ir of the dumps callgrind wrote for ``pid`` (instrumented window only)."""
    total = 0
    for dump in folder.glob(f"callgrind.out.{pid}*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def measure(
    tree: Path,
    upstream: str,
    folder: Path,
    *,
    warmup_s: int,
    seconds: int,
    stream_tokens: int | None = None,
    cache: bool = False,
    semantic: bool = False,
) -> float:
    """Instructions per request for the gateway in ``tree`` (a stream of ``stream_tokens``
    content chunks when given; answered from the response cache when ``cache``: every
    request after the first is a direct hit; ``semantic``: a semantic hit, embedded
    through the mock first)."""
    config = folder / "gateway.json"
    config.write_text(
        json.dumps(
            {
                **({"cache": {"enabled": True, "every_request": True}} if cache else {}),
                **(
                    {"cache": {"enabled": True, "every_request": True, "embedding_model": EMBEDDER}} if semantic else {}
                ),
                "default_provider": "up",
                "providers": {
                    "up": {
                        "base_url": upstream + "/v1",
                        "keys": [{"value": "env.BENCH_UPSTREAM_KEY"}],
                        "pricing_provider": "openai",
                        "client": "pool",
                    }
                },
            }
        )
    )
    port = free_port()
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={folder}/callgrind.out.%p",
        *python_module("gateway", "--log-level", "WARNING", "serve", "--workers", "1"),
        *("--config", str(config), "--port", str(port)),
    ]
    env = {"PYTHONPATH": str(tree), "BENCH_UPSTREAM_KEY": "sk-bench", "GATEWAY_LOG_FORMAT": "text"}
    target = spawn(
        "gateway", argv, port=port, cpu=GATEWAY_CPU, health="/health", log=folder / "gw.log", env=env, cwd=tree
    )
    try:
        script = folder / "chat.lua"
        fields: dict[str, object] = {"model": "gpt-4o-mini", "messages": MESSAGES}
        if stream_tokens is not None:
            fields.update(stream=True, mock={"tokens": stream_tokens})
        body = json.dumps(fields)
        lua = f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        if semantic:  # the direct key skipped: every request embedded, then a semantic hit
            lua += 'wrk.headers["x-bf-cache-type"] = "semantic"\n'
        script.write_text(lua)
        url = target.url + "/v1/chat/completions"
        _wrk(url, script, warmup_s)
        subprocess.run(["callgrind_control", "-i", "on", str(target.pid)], check=True, capture_output=True)
        done = _wrk(url, script, seconds)
        subprocess.run(["callgrind_control", "-i", "off", str(target.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(target.pid)], check=True, capture_output=True)
        time.sleep(1)
        ir = _instructions(folder, target.pid)
    finally:
        target.stop()
    if not ir or not done:
        raise RuntimeError(f"nothing measured for {tree}: {ir} instructions, {done} requests")
    return ir / done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", type=Path, help="a gateway checkout (repeat; default: this one)")
    p.add_argument("--rounds", type=int, default=1, help="measurements per tree, alternated (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="seconds of load before counting (default 10)")
    p.add_argument("--seconds", type=int, default=15, help="seconds counted (default 15)")
    p.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory (callgrind_annotate them)")
    p.add_argument("--cache", action="store_true", help="the response cache on: every request is a direct hit")
    p.add_argument("--semantic", action="store_true", help="every request a semantic hit (embedded through the mock)")
    p.add_argument(
        "--stream-tokens",
        help="two chunk counts, e.g. 20,120: measure streams of each and print instructions per relayed chunk",
    )
    args = p.parse_args(argv)
    counts: list[int | None] = [None]
    if args.stream_tokens:
        counts = [int(n) for n in args.stream_tokens.split(",")]
        if len(counts) != 2 or counts[0] == counts[1]:
            p.error("--stream-tokens takes two different chunk counts, e.g. 20,120")
    for tool in ("valgrind", "callgrind_control", "wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench.callgrind needs {tool} (Debian: valgrind, wrk, util-linux)", file=sys.stderr)
            return 1
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    results: dict[tuple[Path, int | None], list[float]] = {(t, n): [] for t in trees for n in counts}
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        folder = args.keep.resolve() if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        mock_port = free_port()
        mock = spawn(
            "mock",
            ["taskset", "-c", str(LOADGEN_CPU), *python_module("gateway", "mock", "--port", str(mock_port))],
            port=mock_port,
            cpu=None,
            health="/health",
            log=folder / "mock.log",
            env={"PYTHONPATH": str(ROOT)},
        )
        try:
            for _ in range(args.rounds):
                for tree in trees:
                    for n in counts:
                        got = results[tree, n]
                        run = folder / f"run-{len(got)}-{trees.index(tree)}-{n or 0}"
                        run.mkdir()
                        got.append(
                            measure(
                                tree,
                                mock.url,
                                run,
                                warmup_s=args.warmup,
                                seconds=args.seconds,
                                stream_tokens=n,
                                cache=args.cache,
                                semantic=args.semantic,
                            )
                        )
                        what = f"a stream of {n} chunks" if n else "a request"
                        print(f"{tree}: {got[-1] / 1000:.1f}k instructions {what}", flush=True)
        finally:
            mock.stop()
    git = ["git", "log", "-1", "--format=%h"]
    for tree in trees:
        sha = subprocess.run(git, cwd=tree, capture_output=True, text=True, check=False).stdout.strip()
        if counts == [None]:
            runs = " / ".join(f"{v / 1000:.1f}k" for v in results[tree, None])
            print(f"{sha or tree}: {runs}  ({os.path.relpath(tree)})")
            continue
        low, high = sorted(c for c in counts if c is not None)
        per_chunk = [(b - a) / (high - low) for a, b in zip(results[tree, low], results[tree, high], strict=True)]
        runs = " / ".join(f"{v:.0f}" for v in per_chunk)
        print(f"{sha or tree}: {runs} instructions a relayed chunk  ({os.path.relpath(tree)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
