"""Micro benchmarks, one module per hot module of the gateway, in-process, no sockets.

    .venv/bin/python -m bench.micro              # all of them (~1 min)
    .venv/bin/python -m bench.micro.stream       # one module
    .venv/bin/python -m bench.micro --quick      # smoke run (CI): figures meaningless

Each module has ``CASES`` (name -> function) and ``PER`` (how many units one call
covers: 1 request, or the chunks of a stream). The cases of a module take turns within
every round, so a noisy neighbour slows them alike; each figure is the median over rounds
of µs per unit. Compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

Cases = dict[str, Callable[[], object]]


def measure_all(cases: Cases, *, rounds: int, number: int, per: int = 1) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t) / number / per * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


def table(title: str, result: dict[str, float], *, unit: str) -> str:
    lines = [f"{title:<50} {unit:>10}"]
    lines += [f"  {name:<48} {t:>10.3f}" for name, t in result.items()]
    return "\n".join(lines)


def main_for(title: str, cases: Cases, *, per: int = 1, unit: str = "µs/call", number: int = 5_000) -> None:
    p = argparse.ArgumentParser(description=f"Micro benchmark: {title}")
    p.add_argument("--quick", action="store_true", help="few iterations: checks it runs, figures meaningless")
    args = p.parse_args()
    rounds, n = (3, max(1, number // 100)) if args.quick else (31, number)
    print(table(title, measure_all(cases, rounds=rounds, number=n, per=per), unit=unit))
