"""Upstream response headers the gateway passes back to its client.

Clients pace themselves by the provider's rate-limit headers and a 429's Retry-After,
and quote the provider's request id to its support; everything else an upstream sends
(cookies, server banners, hop-by-hop headers) stays behind. The upstream's request id is
renamed: ``x-request-id`` is the gateway's own.
"""

from __future__ import annotations

# Lower-case prefixes, bytes: matched against header names as the parser reports them.
RELAYED_HEADERS = (
    b"x-ratelimit-",
    b"anthropic-ratelimit-",
    b"retry-after",  # and retry-after-ms
    b"x-request-id",
    b"request-id",  # Anthropic's
    b"openai-processing-ms",
)
UPSTREAM_REQUEST_ID = "x-upstream-request-id"
_REQUEST_IDS = frozenset({"x-request-id", "request-id"})


def client_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The relayed upstream headers as the client sees them."""
    out = []
    for name, value in headers:
        low = name.lower()
        out.append((UPSTREAM_REQUEST_ID if low in _REQUEST_IDS else low, value))
    return out


def client_header_lines(headers: list[tuple[str, str]]) -> bytes:
    """``client_headers`` as ``Name: value\r\n`` lines (values came from the upstream's
    parser, so they hold no CR or LF)."""
    return "".join(
        [f"{UPSTREAM_REQUEST_ID if (low := k.lower()) in _REQUEST_IDS else low}: {v}\r\n" for k, v in headers]
    ).encode("latin-1")


def retry_after_s(headers: list[tuple[str, str]]) -> float | None:
    """Seconds from ``retry-after-ms`` or a numeric ``retry-after`` (an HTTP date is
    treated as absent)."""
    for name, value in headers:
        low = name.lower()
        try:
            if low == "retry-after-ms":
                return max(0.0, float(value) / 1000)
            if low == "retry-after":
                return max(0.0, float(value))
        except ValueError:
            continue
    return None
