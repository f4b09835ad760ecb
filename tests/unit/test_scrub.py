"""gateway.scrub: provider keys found plain and JSON-escaped, in bytes, text and headers."""

from __future__ import annotations

import json

import pytest

from gateway.scrub import Scrubber

KEY = "sk-proj-Ab/cd_0123456789"
DIRECT = "AIzaSyD-client-own-key"


def _escape_all(key: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in key)


@pytest.mark.parametrize(
    "form",
    [
        KEY,
        KEY.replace("-", "\\u002d"),
        KEY.replace("-", "\\u002D").replace("/", "\\/"),
        _escape_all(KEY),
        _escape_all(KEY).upper().replace("\\U", "\\u"),
        json.dumps(KEY)[1:-1],
        json.dumps(KEY, ensure_ascii=True).replace("/", "\\/")[1:-1],
    ],
)
def test_scrub_body_finds_the_key_in_every_json_form(form: str) -> None:
    body = b'{"error":{"message":"Incorrect API key provided: %s."}}' % form.encode()
    out = Scrubber([KEY]).body(body)
    assert out == b'{"error":{"message":"Incorrect API key provided: [redacted]."}}'
    assert KEY not in json.loads(out)["error"]["message"]


def test_scrub_body_a_clients_own_key_too() -> None:
    s = Scrubber([KEY])
    body = f"{KEY} {DIRECT} {_escape_all(DIRECT)}".encode()
    assert s.body(body, secret=DIRECT) == b"[redacted] [redacted] [redacted]"
    assert s.body(body) == f"[redacted] {DIRECT} {_escape_all(DIRECT)}".encode()


def test_scrub_leaves_other_text_alone() -> None:
    s = Scrubber([KEY, "short"])  # under 8 characters: never matched
    body = b'{"error":{"message":"a short \\u0041 text, sk-proj-Ab"}}'
    assert s.body(body) is body or s.body(body) == body
    assert Scrubber([]).body(body, secret=None) == body


def test_scrub_text_and_headers() -> None:
    s = Scrubber([KEY])
    assert s.text(f"stream error: {KEY}") == "stream error: [redacted]"
    assert s.text("nothing here") == "nothing here"
    headers = [("x-request-id", f"req-{KEY}"), ("retry-after", DIRECT), ("x-ratelimit-limit", "10")]
    assert s.headers(headers, secret=DIRECT) == [
        ("x-request-id", "req-[redacted]"),
        ("retry-after", "[redacted]"),
        ("x-ratelimit-limit", "10"),
    ]
    clean = [("x-ratelimit-limit", "10")]
    assert s.headers(clean) is clean


def test_scrub_headers_values_too_short_for_a_key_are_skipped_not_missed() -> None:
    """Values are searched only when as long as the shortest key, a client's own included."""
    short_direct = "sk-12345"  # 8 characters: shorter than KEY, still scrubbed
    s = Scrubber([KEY])
    headers = [("retry-after", short_direct), ("x-ratelimit-limit", "10")]
    assert s.headers(headers, secret=short_direct) == [("retry-after", "[redacted]"), ("x-ratelimit-limit", "10")]
    assert s.headers(headers) is headers  # KEY is longer than either value
    assert Scrubber([]).headers(headers) is headers
    assert Scrubber([]).headers([("retry-after", short_direct)], secret=short_direct) == [("retry-after", "[redacted]")]
