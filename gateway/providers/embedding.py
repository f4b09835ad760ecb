"""OpenAI's embeddings answer as the dialects that build one write it (the mock; Gemini's
answers translated), and the vectors' base64 form.

``encoding_format: "base64"`` is OpenAI's: the little-endian float32 bytes of the
vector, base64-encoded (the official SDKs ask for it by default and decode it with
numpy's ``frombuffer(..., dtype="float32")``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

import msgspec

_encode = msgspec.json.Encoder().encode


def float32_base64(values: Sequence[float]) -> bytes:
    """The vector as OpenAI's base64 string, a JSON string value (quotes included)."""
    return b'"%s"' % base64.b64encode(struct.pack(f"<{len(values)}f", *values))


def base64_floats(text: str) -> list[float]:
    """The inverse of ``float32_base64`` (ValueError when ``text`` is not one)."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError("not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def vector_value(values: Sequence[float], *, as_base64: bool) -> bytes:
    """One vector as the JSON value of ``embedding``: a float array or a base64 string."""
    return float32_base64(values) if as_base64 else _encode(values)


def embedding_list(vectors: Sequence[bytes], *, model: str, usage: bytes | None) -> bytes:
    """``{"object": "list", "data": [...], "model", "usage"}`` from each vector's encoded
    JSON value (``vector_value``, or an upstream's array copied as it came)."""
    items = b",".join(b'{"object":"embedding","index":%d,"embedding":%s}' % (i, v) for i, v in enumerate(vectors))
    out = b'{"object":"list","data":[' + items + b'],"model":' + _encode(model)
    if usage is not None:
        out += b',"usage":' + usage
    return out + b"}"
