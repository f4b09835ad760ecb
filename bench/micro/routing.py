"""Routing: the model table and the choice among a provider's weighted keys."""

from __future__ import annotations

from bench.micro import Cases, main_for
from bench.micro.fixtures import table_with
from gateway.config import KeyConfig, ProviderConfig
from gateway.upstream.http import HTTPTransport

TABLE = table_with(
    openai=ProviderConfig(
        base_url="https://api.openai.com/v1",
        keys=(KeyConfig(name="a", value="sk-a", weight=3), KeyConfig(name="b", value="sk-b", weight=1)),
    ),
    vllm=ProviderConfig(base_url="http://127.0.0.1:8000/v1", keys=(KeyConfig(value="sk-one"),)),
)
WEIGHTED = TABLE.providers["openai"]
ONE_KEY = TABLE.providers["vllm"]
assert isinstance(WEIGHTED.transport, HTTPTransport) and isinstance(ONE_KEY.transport, HTTPTransport)

CASES: Cases = {
    "resolve provider/model": lambda: TABLE.resolve("vllm/meta-llama/Llama-3.1-8B"),
    "resolve bare model (default provider)": lambda: TABLE.resolve("gpt-4o"),
    "key choice, one key": lambda: ONE_KEY.keys.choose("m"),
    "key choice, two weighted keys": lambda: WEIGHTED.keys.choose("m"),
}

if __name__ == "__main__":
    main_for("routing: model table and key choice", CASES)
