"""Every wire dialect by the name a provider's config gives (``dialect:``).

Adding a dialect is its module (with its ``DIALECT``), one line here and the name in
``config.schema.ProviderConfig.dialect`` (a test holds the two equal)."""

from __future__ import annotations

from gateway.providers import anthropic, gemini, mock, openai
from gateway.providers.dialect import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": openai.DIALECT,
    "anthropic": anthropic.DIALECT,
    "gemini": gemini.DIALECT,
    "mock": mock.DIALECT,
}
