"""The mock's embeddings: deterministic unit-length vectors, close for similar texts.

Each text is hashed into its vector by feature hashing: its lowercase words and its
character trigrams (of the lowercase text padded with one space each side), each
feature adding +1 or -1 (a signed hash: BLAKE2b, 8 bytes, fixed personalisation) at the
index the hash picks; the sum is L2-normalised. The same text always gives the same
vector; texts sharing words and spellings share features, so their cosine is higher
than that of unrelated texts. A token-id input is hashed as its ids. Plain Python: the
mock needs no numpy.

The vector's length is the request's ``dimensions``, else by model name: 3072 for
names containing ``3-large`` or ``gemini-embedding``, 1536 for ``3-small`` or ``ada``,
768 otherwise. Usage: about 4 characters a token for a text, one a token id (an
estimate, like the chat mock's; the mock stays bytes in, bytes out).
"""

from __future__ import annotations

import math
import re
from hashlib import blake2b
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from gateway.errors import InvalidRequest
from gateway.providers.embedding import embedding_list, vector_value

DEFAULT_DIMENSIONS = 768
# By model name (lowercase substring), first match wins.
MODEL_DIMENSIONS = (("3-large", 3072), ("gemini-embedding", 3072), ("3-small", 1536), ("ada", 1536))
# Inputs times dimensions a request may ask for: a bound on the mock's memory and time
# (2048 inputs of 2048 dimensions).
MAX_VALUES = 2048 * 2048
_PERSON = b"gateway-mock"
_WORD = re.compile(r"\w+")
_BYTES_PER_TOKEN = 4


class EmbeddingsRequest(Struct, kw_only=True):
    """What the mock reads of an OpenAI embeddings request."""

    model: str = "mock"
    input: str | list[str | int | list[int]]
    encoding_format: str | None = None
    dimensions: Annotated[int, Meta(ge=1)] | None = None


_decode = msgspec.json.Decoder(EmbeddingsRequest).decode


def dimensions_for(model: str) -> int:
    name = model.lower()
    return next((d for part, d in MODEL_DIMENSIONS if part in name), DEFAULT_DIMENSIONS)


def _features(text: str) -> list[str]:
    low = text.lower()
    padded = f" {low} "
    return ["w:" + w for w in _WORD.findall(low)] + ["c:" + padded[i : i + 3] for i in range(len(padded) - 2)]


def vector(features: list[str], dimensions: int) -> list[float]:
    """The unit vector of ``features`` (a text's: ``_features``)."""
    acc = [0.0] * dimensions
    for f in features:
        h = int.from_bytes(blake2b(f.encode(), digest_size=8, person=_PERSON).digest(), "little")
        acc[h % dimensions] += 1.0 if h >> 63 else -1.0
    norm = math.sqrt(math.fsum(x * x for x in acc))
    if not norm:  # every feature cancelled out: still a unit vector, still deterministic
        acc[0] = norm = 1.0
    return [x / norm for x in acc]


def embed_text(text: str, dimensions: int) -> list[float]:
    return vector(_features(text), dimensions)


def inputs(value: str | list[str | int | list[int]]) -> list[str | list[int]]:
    """The inputs of an ``input``, as OpenAI reads it: a string or a list of token ids
    is one input; a list of strings or of token id lists is one input each."""
    if isinstance(value, str):
        return [value]
    ids = [i for i in value if isinstance(i, int)]
    if ids:
        return [ids]
    return [i for i in value if not isinstance(i, int)]


def _tokens(item: str | list[int]) -> int:
    if isinstance(item, str):
        return max(1, (len(item) + _BYTES_PER_TOKEN - 1) // _BYTES_PER_TOKEN)
    return len(item)


def answer(body: bytes) -> bytes:
    """An OpenAI embeddings request's answer (InvalidRequest for a body the mock cannot
    read or a request over its bound)."""
    try:
        req = _decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise InvalidRequest(f"mock provider: invalid embeddings request: {e}", param="input") from None
    items = inputs(req.input)
    dims = req.dimensions or dimensions_for(req.model)
    if not items or len(items) * dims > MAX_VALUES:
        raise InvalidRequest(
            f"mock provider: between 1 input and {MAX_VALUES} values (inputs x dimensions) a request",
            param="input",
        )
    as_base64 = req.encoding_format == "base64"
    vectors = []
    for item in items:
        features = _features(item) if isinstance(item, str) else [f"t:{i}" for i in item]
        vectors.append(vector_value(vector(features, dims), as_base64=as_base64))
    tokens = sum(_tokens(i) for i in items)
    usage = b'{"prompt_tokens":%d,"total_tokens":%d}' % (tokens, tokens)
    return embedding_list(vectors, model=req.model, usage=usage)
