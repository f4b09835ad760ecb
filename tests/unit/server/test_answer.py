"""A relayed answer's headers: ``answer_headers`` (the general assembly, used by the
web.Response path and async jobs) and the common answer's hand-built head lines
(``client_header_lines`` after the provider line) give the same headers, in order."""

from __future__ import annotations

import pytest
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.test_utils import make_mocked_request

from gateway.relay.call import PROVIDER_HEADER, answer_headers
from gateway.server.answer import fits
from gateway.upstream.relayed import client_header_lines, client_headers

RELAYED = [
    [],
    [("x-ratelimit-remaining-requests", "9")],
    [("X-Request-Id", "up-1"), ("Request-Id", "up-2"), ("retry-after-ms", "1500")],
    [("x-ratelimit-limit-tokens", "1000"), ("x-ratelimit-limit-tokens", "2000")],  # repeated: both kept
    [("OpenAI-Processing-MS", "12"), ("anthropic-ratelimit-requests-reset", "2025-01-01T00:00:00Z")],
    [("x-request-id", "latin-1 \xe9")],
]


def lines(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1")


@pytest.mark.parametrize("relayed", RELAYED)
@pytest.mark.parametrize("provider", ["up", "openai-eu"])
def test_common_head_lines_equal_answer_headers(relayed: list[tuple[str, str]], provider: str) -> None:
    common = b"%s: %s\r\n" % (PROVIDER_HEADER.encode(), provider.encode()) + (
        client_header_lines(relayed) if relayed else b""
    )
    assert common == lines(answer_headers(provider, 0, relayed))
    assert client_header_lines(relayed) == lines(client_headers(relayed))


def test_answer_headers_name_the_fallback_and_rename_request_ids() -> None:
    relayed = [("X-Request-Id", "a"), ("request-id", "b"), ("X-RateLimit-Remaining-Tokens", "5")]
    assert answer_headers("backup", 2, relayed) == [
        ("x-bifrost-provider", "backup"),
        ("x-bifrost-fallback-index", "2"),
        ("x-upstream-request-id", "a"),
        ("x-upstream-request-id", "b"),
        ("x-ratelimit-remaining-tokens", "5"),
    ]
    assert answer_headers("up", 0, []) == [("x-bifrost-provider", "up")]


def test_fits_http11_only() -> None:
    assert fits(make_mocked_request("POST", "/v1/chat/completions", version=HttpVersion11))
    assert not fits(make_mocked_request("POST", "/v1/chat/completions", version=HttpVersion10))
