"""gateway.upstream.relayed: which upstream headers reach the client, and Retry-After."""

from __future__ import annotations

import pytest

from gateway.upstream.relayed import client_headers, retry_after_s


def test_client_headers_lower_case_and_rename_upstream_request_ids() -> None:
    assert client_headers([("X-Request-Id", "a"), ("Request-Id", "b"), ("X-RateLimit-Limit", "9")]) == [
        ("x-upstream-request-id", "a"),
        ("x-upstream-request-id", "b"),
        ("x-ratelimit-limit", "9"),
    ]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ([], None),
        ([("Retry-After", "2")], 2.0),
        ([("retry-after", "0.5")], 0.5),
        ([("retry-after-ms", "1500")], 1.5),
        ([("retry-after-ms", "250"), ("retry-after", "9")], 0.25),  # the first one found
        ([("retry-after", "-3")], 0.0),
        ([("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], None),  # a date: absent
        ([("retry-after", "soon"), ("retry-after-ms", "100")], 0.1),  # unreadable: the next
        ([("x-ratelimit-reset", "5")], None),
    ],
)
def test_retry_after_s(headers: list[tuple[str, str]], seconds: float | None) -> None:
    assert retry_after_s(headers) == seconds
