"""The HTTP side: aiohttp's low-level server, a dict route table, the handlers."""
