"""The OpenAI dialect, spoken by OpenAI and every compatible server (vLLM, Ollama,
Groq, ...). Bodies pass through; only ``model`` is swapped (see codec). Its SDK routes
are the gateway's own API, under every integration prefix."""

from __future__ import annotations

from gateway.providers import Endpoint
from gateway.providers.dialect import Dialect, Integration, Route, Upstream

ENDPOINTS: frozenset[Endpoint] = frozenset({"chat", "text", "embeddings"})
PATHS: dict[Endpoint, str] = {
    "chat": "/chat/completions",
    "text": "/completions",
    "embeddings": "/embeddings",
    # For providers with ``responses: native`` only.
    "responses": "/responses",
    "responses_input_tokens": "/responses/input_tokens",
}
MODELS_PATH = "/models"

UPSTREAM = Upstream(paths=PATHS, models_path=MODELS_PATH)


def urls(base_url: str) -> dict[Endpoint, str]:
    """Endpoint URLs for a base URL such as ``https://api.openai.com/v1``."""
    return UPSTREAM.urls(base_url)


def request_headers(*, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Per-key upstream headers (``Authorization: Bearer``)."""
    return UPSTREAM.request_headers(api_key=api_key, extra=extra)


DIALECT = Dialect(
    "openai",
    endpoints=ENDPOINTS,
    upstream=UPSTREAM,
    routes=(
        Route("POST", "/chat/completions", "chat"),
        Route("POST", "/completions", "completions"),
        Route("GET", "/models", "models"),
        Route("POST", "/embeddings", "embeddings"),
        Route("GET", "/models/{model}", "model"),
    ),
    # Each SDK's base URL points at one of these, with or without the /v1 (ChatOpenAI's
    # base_url=".../langchain" sends /langchain/chat/completions). At the root only
    # /v1/...: the reference API serves no bare /chat/completions either.
    integrations=(
        Integration("", ("/v1",)),
        *(Integration(p, ("/v1", "")) for p in ("/openai", "/langchain", "/pydanticai", "/litellm")),
    ),
)
