"""Reading a request body within a size bound."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import PayloadTooLarge


async def read_bounded(request: web.BaseRequest, *, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes
    (announced or actually sent: chunked and compressed bodies are counted too)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    content = request.content
    first = await content.readany()
    if content.at_eof() and len(first) <= limit:
        return first  # the common case: the whole body in one read, no copy
    parts, size = [], 0
    chunk = first
    while chunk:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
        chunk = await content.readany()
    return b"".join(parts)
