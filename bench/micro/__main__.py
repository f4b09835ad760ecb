"""Every micro benchmark module, one table each."""

from __future__ import annotations

import argparse

from bench.micro import access, codec, enrich, measure_all, pipeline, routing, stream, table, tokens

MODULES = (
    ("codec: request validation and upstream body", codec.CASES, 1, "µs/call", 5_000),
    ("routing: model table and key choice", routing.CASES, 1, "µs/call", 5_000),
    ("enrich: usage.cost and extra_fields", enrich.CASES, 1, "µs/call", 5_000),
    ("tokens: offline BPE counting", tokens.CASES, 1, "µs/call", 2_000),
    ("stream: per relayed chunk", stream.CASES, len(stream.FRAMES), "µs/chunk", 100),
    ("pipeline: one non-streaming request, in-process", pipeline.CASES, 1, "µs/call", 5_000),
    ("access: metrics and log line per answer", access.CASES, 1, "µs/call", 5_000),
)


def main() -> None:
    p = argparse.ArgumentParser(description="All micro benchmarks (see bench/micro/__init__.py)")
    p.add_argument("--quick", action="store_true", help="few iterations: checks it runs, figures meaningless")
    args = p.parse_args()
    stream.TOKENIZERS.get("o200k_base")
    for title, cases, per, unit, number in MODULES:
        rounds, n = (3, max(1, number // 100)) if args.quick else (31, number)
        print(table(title, measure_all(cases, rounds=rounds, number=n, per=per), unit=unit))


if __name__ == "__main__":
    main()
