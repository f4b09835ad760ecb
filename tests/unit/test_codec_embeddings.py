"""codec.decode_embeddings and the offline count of an embeddings request's input."""

from __future__ import annotations

import pytest

from gateway import codec
from gateway.accounting.ledger import Ledger
from gateway.accounting.tokens import CHAR_ESTIMATE, Tokenizers, count_embeddings_input
from gateway.errors import InvalidRequest
from gateway.metrics import Metrics


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","input":"hi"}',
        b'{"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":3,"user":"u"}',
        b'{"model":"m","input":[1,2,3]}',
        b'{"model":"m","input":[[1],[2,3]],"fallbacks":["x/y"],"unknown":{"a":1}}',
        b'{"model":"m","input":"hi","encoding_format":null,"dimensions":null}',
    ],
)
def test_codec_embeddings_accepts_openais_shapes(body: bytes) -> None:
    assert codec.decode_embeddings(body).model == "m"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"m"}', "input"),
        (b'{"model":"m","input":[]}', "input"),
        (b'{"model":"m","input":[""]}', "input"),
        (b'{"model":"m","input":[[1],[]]}', "input"),
        (b'{"model":"m","input":[-1]}', "input"),
        (b'{"model":"m","input":[[1],"a"]}', "input"),
        (b'{"model":"m","input":true}', "input"),
        (b'{"input":"a"}', "model"),
        (b'{"model":"m","input":"a","stream":false}', "stream"),
        (b'{"model":"m","input":"a","dimensions":0}', "dimensions"),
        (b'{"model":"m","input":"a","encoding_format":"int8"}', "encoding_format"),
    ],
)
def test_codec_embeddings_refusals_name_the_field(body: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        codec.decode_embeddings(body)
    assert info.value.status == 400 and info.value.param == param


def test_codec_embeddings_repeated_key_refused_when_strict() -> None:
    body = b'{"model":"a","input":"x","model":"b"}'
    codec.decode_embeddings(body)
    with pytest.raises(InvalidRequest):
        codec.decode_embeddings(body, strict=True)


def test_tokens_embeddings_input_counted() -> None:
    assert count_embeddings_input(CHAR_ESTIMATE, b'{"input":"abcdefgh"}') == 2
    assert count_embeddings_input(CHAR_ESTIMATE, b'{"input":["abcd","abcdefgh"]}') == 3
    assert count_embeddings_input(CHAR_ESTIMATE, b'{"input":[1,2,3]}') == 3
    assert count_embeddings_input(CHAR_ESTIMATE, b'{"input":[[1,2],[3]]}') == 3
    ledger = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
    # The BPE count: "hello world" is two cl100k tokens.
    assert (
        ledger.prompt_tokens(endpoint="embeddings", model="text-embedding-3-small", body=b'{"input":"hello world"}')
        == 2
    )
