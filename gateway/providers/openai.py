"""The OpenAI dialect, spoken by OpenAI and every compatible server (vLLM, Ollama,
Groq, ...). Bodies pass through; only ``model`` is swapped (see codec)."""

from __future__ import annotations

from gateway.providers import Endpoint

ENDPOINTS: frozenset[Endpoint] = frozenset({"chat", "text"})
PATHS: dict[Endpoint, str] = {"chat": "/chat/completions", "text": "/completions"}
MODELS_PATH = "/models"


def urls(base_url: str) -> dict[Endpoint, str]:
    """Endpoint URLs for a base URL such as ``https://api.openai.com/v1``."""
    return {e: base_url + p for e, p in PATHS.items()}


def request_headers(*, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Per-key upstream headers; the session adds User-Agent. Each header costs aiohttp's
    client a few µs per request, so only what the upstream needs."""
    headers = {"Content-Type": "application/json"}
    headers.update(extra)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers
