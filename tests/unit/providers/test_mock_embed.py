"""providers.mock_embed: deterministic unit vectors, closer for similar texts."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

from gateway.errors import InvalidRequest
from gateway.providers import mock_embed


def _cos(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def test_mock_embed_unit_length_and_deterministic() -> None:
    for text in ("hello", "The quick brown fox jumps over the lazy dog", "日本語のテキスト", "   "):
        v = mock_embed.embed_text(text, 256)
        assert len(v) == 256 and abs(math.sqrt(math.fsum(x * x for x in v)) - 1) < 1e-6
        assert mock_embed.embed_text(text, 256) == v


def test_mock_embed_similar_texts_are_closer() -> None:
    base = mock_embed.embed_text("The cat sat on the mat", 1536)
    similar = mock_embed.embed_text("the cat sat on a mat", 1536)
    unrelated = mock_embed.embed_text("Quarterly revenue grew by nine percent", 1536)
    assert _cos(base, similar) > 0.7
    assert abs(_cos(base, unrelated)) < 0.2
    assert _cos(base, similar) - _cos(base, unrelated) > 0.5


@pytest.mark.parametrize(
    ("model", "dims"),
    [
        ("text-embedding-3-small", 1536),
        ("text-embedding-ada-002", 1536),
        ("text-embedding-3-large", 3072),
        ("gemini-embedding-001", 3072),
        ("anything", 768),
    ],
)
def test_mock_embed_dimensions_by_model(model: str, dims: int) -> None:
    out = json.loads(mock_embed.answer(b'{"model":"%s","input":"hi"}' % model.encode()))
    assert len(out["data"][0]["embedding"]) == dims


def test_mock_embed_answer_shape_and_usage() -> None:
    body = b'{"model":"m","input":["abcdefgh","xy"],"dimensions":3}'
    out = json.loads(mock_embed.answer(body))
    assert out["object"] == "list" and out["model"] == "m"
    assert [(d["object"], d["index"], len(d["embedding"])) for d in out["data"]] == [
        ("embedding", 0, 3),
        ("embedding", 1, 3),
    ]
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}  # ~4 characters a token


def test_mock_embed_token_ids_are_inputs_as_openai_reads_them() -> None:
    one = json.loads(mock_embed.answer(b'{"input":[1,2,3],"dimensions":4}'))
    assert len(one["data"]) == 1 and one["usage"]["prompt_tokens"] == 3
    two = json.loads(mock_embed.answer(b'{"input":[[1,2],[3]],"dimensions":4}'))
    assert len(two["data"]) == 2 and two["usage"]["prompt_tokens"] == 3


def test_mock_embed_base64_is_the_float_vector() -> None:
    floats = json.loads(mock_embed.answer(b'{"input":"hi","dimensions":8}'))["data"][0]["embedding"]
    text = json.loads(mock_embed.answer(b'{"input":"hi","dimensions":8,"encoding_format":"base64"}'))
    decoded = struct.unpack("<8f", base64.b64decode(text["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats, abs=1e-7)


@pytest.mark.parametrize("body", [b"{}", b'{"input":"a","dimensions":0}', b'{"input":[]}', b"x"])
def test_mock_embed_refuses_what_it_cannot_answer(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        mock_embed.answer(body)


def test_mock_embed_bounds_the_work() -> None:
    body = b'{"input":["a","b"],"dimensions":%d}' % (mock_embed.MAX_VALUES // 2 + 1)
    with pytest.raises(InvalidRequest, match="inputs x dimensions"):
        mock_embed.answer(body)
