"""providers.gemini.embed: OpenAI embeddings to and from Gemini's batchEmbedContents, and
the google-genai SDK's embedding requests to and from OpenAI's, from recorded wire bytes."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers.gemini import embed

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_gemini_embed_request_from_openai() -> None:
    out = embed.embeddings_request(fixture("embed_openai_request.json"), model="gemini-embedding-001")
    assert out == fixture("embed_batch_request.json")


def test_gemini_embed_request_string_input_without_dimensions() -> None:
    out = embed.embeddings_request(b'{"model":"m","input":"hi"}', model="g")
    assert out == b'{"requests":[{"model":"models/g","content":{"parts":[{"text":"hi"}]}}]}'


@pytest.mark.parametrize("value", [b"[1,2,3]", b"[[1,2],[3]]"])
def test_gemini_embed_request_refuses_token_ids(value: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        embed.embeddings_request(b'{"model":"m","input":%s}' % value, model="g")
    assert info.value.param == "input" and info.value.code == "unsupported_value"


def test_gemini_embed_response_floats_copied_as_sent() -> None:
    out = embed.embeddings_response(fixture("embed_batch_answer.json"), model="gemini-embedding-001", base64=False)
    assert out == (
        b'{"object":"list","data":['
        b'{"object":"embedding","index":0,"embedding":[0.013168523,-0.008711934,-0.046782676,0.000699695]},'
        b'{"object":"embedding","index":1,"embedding":[-0.5,0.25,0.125,1.0]}],'
        b'"model":"gemini-embedding-001"}'
    )


def test_gemini_embed_response_base64_is_openais_float32() -> None:
    out = json.loads(embed.embeddings_response(fixture("embed_batch_answer.json"), model="g", base64=True))
    second = out["data"][1]["embedding"]
    # Exactly representable values: OpenAI's encoding, byte for byte.
    assert base64.b64decode(second) == struct.pack("<4f", -0.5, 0.25, 0.125, 1.0)
    first = struct.unpack("<4f", base64.b64decode(out["data"][0]["embedding"]))
    assert first == pytest.approx([0.013168523, -0.008711934, -0.046782676, 0.000699695], rel=1e-6)


@pytest.mark.parametrize("data", [b'{"error":{"message":"x"}}', b'{"embeddings":[{"values":"x"}]}', b"nope"])
def test_gemini_embed_response_unreadable(data: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        embed.embeddings_response(data, model="g", base64=True)


def test_gemini_embed_client_batch_to_openai() -> None:
    out = embed.client_request(fixture("embed_sdk_batch.json"), model="up/e", single=False)
    # taskType and title have no OpenAI equivalent; the parts of one content are joined.
    assert json.loads(out) == {
        "model": "up/e",
        "input": ["the cat sat", "bond yields"],
        "encoding_format": "float",
        "dimensions": 16,
    }


def test_gemini_embed_client_single_to_openai() -> None:
    out = embed.client_request(b'{"content":{"parts":[{"text":"a"},{"text":"b"}]}}', model="m", single=True)
    assert out == b'{"model":"m","input":"ab","encoding_format":"float"}'


@pytest.mark.parametrize(
    ("body", "single", "param"),
    [
        (b'{"requests":[]}', False, "requests"),
        (b"{}", False, "requests"),
        (b'{"content":{"parts":[]}}', True, "content.parts"),
        (b'{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":""}}]}}', True, "content.parts[0]"),
        (b'{"requests":[{"content":{"parts":[{"text":""}]}}]}', False, "requests[0].content"),
        (
            b'{"requests":[{"content":{"parts":[{"text":"a"}]},"outputDimensionality":8},'
            b'{"content":{"parts":[{"text":"b"}]},"outputDimensionality":16}]}',
            False,
            "requests[0].outputDimensionality",
        ),
    ],
)
def test_gemini_embed_client_request_refusals(body: bytes, single: bool, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        embed.client_request(body, model="m", single=single)
    assert info.value.param == param


def test_gemini_embed_native_request_keeps_the_clients_fields() -> None:
    body = fixture("embed_sdk_batch.json")[:-1] + b',"fallbacks":["up/e"]}'
    out = json.loads(embed.native_request(body, model="gemini-embedding-002", single=False))
    sent = json.loads(fixture("embed_sdk_batch.json"))
    for r in sent["requests"]:
        r["model"] = "models/gemini-embedding-002"
    assert out == sent


def test_gemini_embed_native_request_single_becomes_a_batch() -> None:
    body = b'{"content":{"parts":[{"text":"a"}]},"taskType":"CLUSTERING"}'
    out = embed.native_request(body, model="g", single=True)
    assert out == b'{"requests":[{"content":{"parts":[{"text":"a"}]},"taskType":"CLUSTERING","model":"models/g"}]}'


def test_gemini_embed_client_answers() -> None:
    openai = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"m"}'
    assert embed.client_answer(openai, single=True) == b'{"embedding":{"values":[0.5,-0.25]}}'
    assert embed.client_answer(openai, single=False) == b'{"embeddings":[{"values":[0.5,-0.25]}]}'
    as_base64 = openai.replace(b"[0.5,-0.25]", b'"%s"' % base64.b64encode(struct.pack("<2f", 0.5, -0.25)))
    assert embed.client_answer(as_base64, single=False) == b'{"embeddings":[{"values":[0.5,-0.25]}]}'


def test_gemini_embed_native_answers() -> None:
    data = fixture("embed_batch_answer.json")
    assert embed.native_answer(data, single=False) is data
    assert embed.native_answer(data, single=True) == (
        b'{"embedding":{"values":[0.013168523,-0.008711934,-0.046782676,0.000699695]}}'
    )
    with pytest.raises(UpstreamProtocolError):
        embed.native_answer(b'{"embeddings":[]}', single=True)
