"""Wire dialects as pure translators: bytes and Structs in, bytes and Structs out.
No aiohttp, no environment, no globals. What a dialect supports is data
(``ENDPOINTS``), not stub methods."""

from typing import Literal

Endpoint = Literal["chat", "text"]
