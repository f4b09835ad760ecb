"""Wire dialects as pure translators: bytes and Structs in, bytes and Structs out.
No aiohttp, no environment, no globals. What a dialect supports is data
(``ENDPOINTS``), not stub methods.

Each dialect module (``openai``, ``anthropic``, ``gemini``, ``mock``) exposes one
``DIALECT`` object (``dialect.Dialect``: its endpoints, how it is reached, its
translators, its SDK routes); ``registry.DIALECTS`` maps a provider's configured
``dialect`` to it. A provider takes its dialect once, at start-up; the server's
inference routes are generated from the dialects' routes (``server.routes``). Adding a
dialect is its module, one registry line and its name in the config's ``dialect``."""

from typing import Literal

# "count_tokens": an SDK's token count, relayed to a target of its own dialect only.
# "responses": OpenAI's Responses API, relayed as is to an OpenAI-dialect provider
# configured with ``responses: native`` (no dialect lists it among its endpoints), and
# "responses_input_tokens" its token count there.
Endpoint = Literal["chat", "text", "embeddings", "count_tokens", "responses", "responses_input_tokens"]
