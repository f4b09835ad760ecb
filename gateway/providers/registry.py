"""Every wire dialect by the name a provider's config gives (``dialect:``).

Adding a dialect is its module (with its ``DIALECT``), one line here and, for one a
provider may speak, the name in ``config.schema.ProviderConfig.dialect`` (a test holds
that equal to ``CONFIGURABLE``). An SDK-side-only dialect (``responses``) serves no
endpoint of its own: its SDK's requests go on as OpenAI chat."""

from __future__ import annotations

from gateway.providers import anthropic, gemini, mock, openai, responses
from gateway.providers.dialect import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": openai.DIALECT,
    "anthropic": anthropic.DIALECT,
    "gemini": gemini.DIALECT,
    "mock": mock.DIALECT,
    # SDK-side only: its requests go on as OpenAI chat; no provider is configured with it.
    "responses": responses.DIALECT,
}

# The dialects a provider's config may name: those serving an endpoint of their own.
CONFIGURABLE = tuple(name for name, d in DIALECTS.items() if d.endpoints)
