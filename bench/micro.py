"""Micro benchmarks of the per-request hot path, in-process, no sockets.

    .venv/bin/python -m bench.micro            # full run (~10 s)
    .venv/bin/python -m bench.micro --quick    # smoke run (CI)

Each figure is the median over rounds of the mean time per call, in microseconds.
Machines here are shared and noisy: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import msgspec

from gateway import codec
from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.accounting.usage import decode_usage
from gateway.config import ProviderConfig
from gateway.metrics import Metrics
from gateway.relay.call import Call
from gateway.relay.unary import account
from gateway.routing.providers import build
from gateway.routing.table import ModelTable
from gateway.schemas.response import ExtraFields

# A typical 1 KB chat request and a 600 B answer, the sizes performance.md uses.
REQUEST = msgspec.json.encode(
    {
        "model": "mock/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. " * 8},
            {"role": "user", "content": "Explain the difference between TCP and UDP in detail please. " * 10},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "user": "u-123",
        "x_vendor": {"a": [1, 2]},
    }
)
BARE = REQUEST.replace(b'"mock/gpt-4o-mini"', b'"gpt-4o-mini"')
RESPONSE = msgspec.json.encode(
    {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "TCP is connection-oriented and reliable. " * 9},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 250, "completion_tokens": 64, "total_tokens": 314},
    }
)
LEDGER = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
USAGE = decode_usage(b'{"prompt_tokens":250,"completion_tokens":64,"total_tokens":314}')
TABLE = ModelTable(
    {"mock": build("mock", ProviderConfig(dialect="mock"), session=None, genai=GenaiPrices(), ledger=LEDGER)},  # type: ignore[arg-type]
    default="mock",
    aliases={},
)


def pipeline() -> bytes:
    """What one non-streaming request costs the gateway besides sockets and the
    upstream: validate, route, build the upstream body, read the answer's head,
    price its usage, splice usage.cost and extra_fields, record metrics."""
    t0 = time.perf_counter()
    req = codec.decode_chat(REQUEST)
    target = TABLE.resolve(req.model)
    body = codec.upstream_body(REQUEST, model=target.model, rewrite_model=target.rewrite, has_gateway_fields=False)
    call = Call(
        endpoint="chat",
        request_type="chat_completion",
        requested=req.model,
        targets=[(target, body)],
        body=REQUEST,
        t0=t0,
        raw_request=False,
        raw_response=False,
        client_usage=False,
        ledger=LEDGER,
        timeouts=None,
    )
    head = codec.response_head(RESPONSE)
    data, estimated = account(call, target, RESPONSE, bytes(head.usage))  # type: ignore[arg-type]
    return codec.enrich(data, head, call.extra_fields(target, estimated=estimated))


CASES: dict[str, Callable[[], object]] = {
    "validate chat request (1 KB)": lambda: codec.decode_chat(REQUEST),
    "upstream body, model swapped": lambda: codec.upstream_body(
        REQUEST, model="gpt-4o-mini", rewrite_model=True, has_gateway_fields=False
    ),
    "upstream body, bare model (no copy)": lambda: codec.upstream_body(
        BARE, model="gpt-4o-mini", rewrite_model=False, has_gateway_fields=False
    ),
    "route provider/model": lambda: TABLE.resolve("mock/gpt-4o-mini"),
    "response head + extra_fields splice (600 B)": lambda: codec.enrich(
        RESPONSE,
        codec.response_head(RESPONSE),
        ExtraFields(request_type="c", provider="p", model_requested="m", model_deployment="m", latency=1.0),
    ),
    "price usage (cached model)": lambda: (
        TABLE.resolve("mock/gpt-4o-mini").provider.pricing.lookup("gpt-4o-mini").cost(USAGE)
    ),  # type: ignore[union-attr]
    "whole in-process pipeline": pipeline,
}


def measure_all(cases: dict[str, Callable[[], object]], *, rounds: int, number: int) -> dict[str, float]:
    """Median µs per call of each case; the cases take turns within every round, so a
    noisy neighbour slows them alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t) / number * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few iterations: checks it runs, figures meaningless")
    args = p.parse_args()
    rounds, number = (3, 200) if args.quick else (31, 5_000)
    print(f"{'case':<46} {'µs/call':>9}")
    for name, t in measure_all(CASES, rounds=rounds, number=number).items():
        print(f"{name:<46} {t:>9.2f}")


if __name__ == "__main__":
    main()
