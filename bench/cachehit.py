"""What a response-cache hit costs: the gateway answering from its cache against the same
gateway relaying to the mock, and against the floor forwarder's relay (bench/floor.py,
its pool), side by side, one request body repeated (so every request after the first
is a direct hit).

    .venv/bin/python -m bench.cachehit --rounds 3 --duration 5
    .venv/bin/python -m bench.cachehit --quick          # smoke run: figures meaningless

Pinned as bench/load.py: the mock and wrk on CPU 0, each server alone on CPU 1. CPU per
request from /proc; contenders alternate within each round; medians reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.load import LOADGEN_CPU, SERVER_CPU, TOKENS, Cell, Scenario, run_wrk
from bench.targets import Target, free_port, python_module, spawn

SCENARIOS = (Scenario("unary", stream=False, upstream="fast"), Scenario("stream", stream=True, upstream="fast"))
CONTENDERS = ("floor+pool", "gateway", "gateway cached", "gateway semantic")
# Every request a semantic hit: the direct lookup skipped by header, the last user message
# embedded through the mock (CPU 0) and found among the kept answers' vectors.
SEMANTIC = {"x-bf-cache-type": "semantic"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run: checks it works, figures meaningless")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per cell (default 5)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration, args.connections = 1, 1.0, 4
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="gateway-cachehit-") as tmp, ExitStack() as stack:
        folder = Path(tmp)

        def start(name: str, argv: list[str], cpu: int, port: int) -> Target:
            t = spawn(name, argv, port=port, cpu=cpu, health="/health", log=folder / f"{name}.log")
            stack.callback(t.stop)
            return t

        port = free_port()
        mock = start("mock", python_module("gateway", "mock", "--port", str(port), "--tokens", str(TOKENS)), 0, port)
        port = free_port()
        floor = start(
            "floor+pool", python_module("bench.floor", "--pool", "--port", str(port), "--upstream", mock.url), 1, port
        )
        floor.model = "gpt-x"
        targets = {"floor+pool": floor}
        on = {"enabled": True, "every_request": True}
        semantic = {**on, "embedding_model": "up/text-embedding-3-small"}
        for name, cache in (
            ("gateway", {}),
            ("gateway cached", {"cache": on}),
            ("gateway semantic", {"cache": semantic}),
        ):
            provider = {"base_url": mock.url + "/v1", "keys": [{"value": "sk-bench"}], "pricing_provider": "openai"}
            config = folder / f"{name.replace(' ', '-')}.json"
            config.write_text(json.dumps({"default_provider": "up", "providers": {"up": provider}, **cache}))
            port = free_port()
            argv = python_module(
                *("gateway", "--log-level", "WARNING", "serve", "--workers", "1"),
                *("--config", str(config), "--port", str(port)),
            )
            targets[name] = start(name, argv, SERVER_CPU, port)
            targets[name].model = "up/gpt-4o-mini"
            if name == "gateway semantic":
                targets[name].headers = dict(SEMANTIC)
        for _ in range(args.rounds):
            for scenario in SCENARIOS:
                for name in CONTENDERS:
                    t = targets[name]
                    run = {"connections": args.connections, "duration_s": args.duration, "folder": folder}
                    cell = run_wrk(t, scenario, cpu_pid=t.pid, **run)  # type: ignore[arg-type]
                    cell.contender = name
                    cells.append(cell)
    if args.json:
        args.json.write_text(json.dumps([c.__dict__ for c in cells], indent=1))
    head = ("scenario", "contender", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors")
    print("{:<8} {:<16} {:>8} {:>7} {:>7} {:>10} {:>6}".format(*head))
    for scenario in SCENARIOS:
        for name in CONTENDERS:
            mine = [c for c in cells if c.scenario == scenario.name and c.contender == name]
            med = {k: statistics.median(getattr(c, k) for c in mine) for k in ("rps", "p50_ms", "p99_ms")}
            cpu = statistics.median(c.cpu_us_per_req for c in mine)
            errors = sum(c.errors for c in mine)
            print(
                f"{scenario.name:<8} {name:<16} {med['rps']:>8.0f} {med['p50_ms']:>7.2f} {med['p99_ms']:>7.2f} "
                f"{cpu:>10.1f} {errors:>6}"
            )
    print(f"(CPU 0: the mock and wrk; CPU 1: the server; mock answers {TOKENS} tokens; {LOADGEN_CPU=})")


if __name__ == "__main__":
    main()
