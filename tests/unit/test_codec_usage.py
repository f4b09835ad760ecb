"""gateway.codec.upstream_body with force_usage: the stream's usage asked of the upstream."""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway import codec

# Odd spacing, escapes and number spellings: values must reach the upstream as sent.
BODY_HEAD = (
    b'{"model": "gpt-4o",  "messages": [ {"role":"user", "content": "h\\u00e9llo \\"there\\"\\n"} ],'
    b' "temperature": 0.70, "max_tokens":1e2, "stream": true, "x_vendor": {"a" : [1, 2 ,3]}'
)


def fields(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in msgspec.json.decode(body, type=dict[str, msgspec.Raw]).items()}


def force(body: bytes, *, rewrite_model: bool = False) -> bytes:
    return codec.upstream_body(
        body, model="other-model", rewrite_model=rewrite_model, has_gateway_fields=False, force_usage=True
    )


def assert_rest_identical(before: bytes, after: bytes, *, changed: tuple[str, ...] = ("stream_options",)) -> None:
    a, b = fields(before), fields(after)
    assert [k for k in a if k not in changed] == [k for k in b if k not in changed]  # order kept
    for key, value in a.items():
        if key not in changed:
            assert b[key] == value, key


def test_upstream_body_force_usage_adds_stream_options_when_absent() -> None:
    body = BODY_HEAD + b"}"
    out = force(body)
    assert json.loads(out)["stream_options"] == {"include_usage": True}
    assert_rest_identical(body, out)
    assert list(fields(out))[-1] == "stream_options"


def test_upstream_body_force_usage_replaces_null_stream_options() -> None:
    body = BODY_HEAD + b', "stream_options": null}'
    out = force(body)
    assert json.loads(out)["stream_options"] == {"include_usage": True}
    assert_rest_identical(body, out)


@pytest.mark.parametrize(
    ("options", "want"),
    [
        (b'{"include_obfuscation": false}', {"include_obfuscation": False, "include_usage": True}),
        (b'{"include_usage": false}', {"include_usage": True}),
        (b'{"include_usage": null, "include_obfuscation": true}', {"include_usage": True, "include_obfuscation": True}),
        (b'{"include_usage": true}', {"include_usage": True}),
        (b"{}", {"include_usage": True}),
        (b'{"vendor_x": {"deep": [1, "two"]}}', {"vendor_x": {"deep": [1, "two"]}, "include_usage": True}),
    ],
)
def test_upstream_body_force_usage_keeps_other_stream_options(options: bytes, want: dict[str, object]) -> None:
    body = BODY_HEAD + b', "stream_options": ' + options + b', "n": 1}'
    out = force(body)
    got = json.loads(out)["stream_options"]
    assert got == want
    assert fields(out)["stream_options"].count(b'"include_usage"') == 1
    assert_rest_identical(body, out)
    assert list(fields(out)) == list(fields(body))  # stream_options stays where it was


def test_upstream_body_force_usage_keeps_other_option_bytes() -> None:
    body = BODY_HEAD + b', "stream_options": {"include_obfuscation":false, "vendor_x": [1,  2]}}'
    opts = fields(fields(force(body))["stream_options"])
    assert opts["vendor_x"] == b"[1,  2]"
    assert opts["include_obfuscation"] == b"false"
    assert opts["include_usage"] == b"true"


def test_upstream_body_force_usage_with_model_rewrite() -> None:
    body = BODY_HEAD + b"}"
    out = force(body, rewrite_model=True)
    parsed = json.loads(out)
    assert parsed["model"] == "other-model"
    assert parsed["stream_options"] == {"include_usage": True}
    assert_rest_identical(body, out, changed=("stream_options", "model"))


def test_upstream_body_force_usage_removes_gateway_fields() -> None:
    body = BODY_HEAD + b', "fallbacks": ["a/b"]}'
    out = codec.upstream_body(body, model="m", rewrite_model=False, has_gateway_fields=True, force_usage=True)
    assert "fallbacks" not in json.loads(out)
    assert json.loads(out)["stream_options"] == {"include_usage": True}
    assert_rest_identical(body, out, changed=("stream_options", "fallbacks"))


def test_upstream_body_without_force_usage_leaves_stream_options() -> None:
    body = BODY_HEAD + b', "stream_options": {"include_usage": false}}'
    out = codec.upstream_body(body, model="other-model", rewrite_model=True, has_gateway_fields=False)
    assert json.loads(out)["stream_options"] == {"include_usage": False}
    assert codec.upstream_body(body, model="x", rewrite_model=False, has_gateway_fields=False) is body
