"""gateway: an OpenAI-compatible LLM gateway that adds almost nothing to each request.

Importing the package must stay cheap (no aiohttp, no event loop): the CLI and the
tests import it before deciding what to start.
"""

__version__ = "0.1.0"
