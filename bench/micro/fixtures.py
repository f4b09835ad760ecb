"""Shared inputs: the sizes ../shared/reference/performance.md measures with."""

from __future__ import annotations

import msgspec

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.config import ProviderConfig
from gateway.metrics import Metrics
from gateway.routing.providers import build
from gateway.routing.table import ModelTable

# A typical 1 KB chat request and a 600 B answer.
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
USAGE_RAW = b'{"prompt_tokens":250,"completion_tokens":64,"total_tokens":314}'

LEDGER = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
GENAI = GenaiPrices()


def table_with(**providers: ProviderConfig) -> ModelTable:
    built = {n: build(n, p, session=None, genai=GENAI, ledger=LEDGER) for n, p in providers.items()}  # type: ignore[arg-type]
    return ModelTable(built, default=next(iter(built)), aliases={})


TABLE = table_with(mock=ProviderConfig(dialect="mock"))
