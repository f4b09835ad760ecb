"""Gemini embeddings (``batchEmbedContents``, ``embedContent``) as pure translators.

Outbound (an OpenAI client, a Gemini upstream): an OpenAI embeddings request becomes
``POST {base}/v1beta/models/{model}:batchEmbedContents`` with one request per input
(``{"model": "models/{model}", "content": {"parts": [{"text"}]},
"outputDimensionality": dimensions}``); Gemini embeds text only, so token-id inputs are
refused (400, param ``input``). Its answer ``{"embeddings": [{"values"}]}`` becomes
OpenAI's list, the values copied as they came, or as OpenAI's base64 (little-endian
float32) when the client asked for ``encoding_format: "base64"``. Gemini reports no
usage: the gateway counts the input (``relay.embed``).

Inbound (a google-genai client, any provider): ``embedContent`` (one content) and
``batchEmbedContents`` (``requests``) become an OpenAI request whose ``input`` is the
content's text parts joined (a string for embedContent, a list for a batch) and whose
``dimensions`` is ``outputDimensionality`` (one value for the whole batch); ``taskType``
and ``title`` have no OpenAI equivalent and are dropped. For a Gemini target the
client's requests pass as they came (``taskType`` and ``title`` kept), with the target's
model, always as ``batchEmbedContents``; an embedContent's answer is unwrapped from it.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers.embedding import base64_floats, embedding_list, float32_base64
from gateway.schemas.embeddings import MAX_INPUTS

_encode = msgspec.json.Encoder().encode
# msgspec's messages: " - at `$.path`" below the root; a missing field named in the text.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_items = msgspec.json.Decoder(list[dict[str, Raw]]).decode


# Outbound: OpenAI's request to Gemini, Gemini's answer to OpenAI's.


class _OpenAIRequest(Struct):
    input: str | list[str | int | list[int]]
    dimensions: int | None = None


class _TextPart(Struct, omit_defaults=True):
    text: str


class _Content(Struct, omit_defaults=True):
    parts: list[_TextPart]


class _EmbedRequest(Struct, omit_defaults=True):
    model: str
    content: _Content
    outputDimensionality: int | UnsetType = UNSET


class _BatchRequest(Struct):
    requests: list[_EmbedRequest]


class _Values(Struct):
    values: Raw


class _BatchAnswer(Struct):
    embeddings: list[_Values]


_openai_request = msgspec.json.Decoder(_OpenAIRequest).decode
_batch_answer = msgspec.json.Decoder(_BatchAnswer).decode
_floats = msgspec.json.Decoder(list[float]).decode


def embeddings_request(body: bytes, *, model: str) -> bytes:
    """An OpenAI embeddings request (validated by the gateway) as a batchEmbedContents body."""
    req = _openai_request(body)
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "gemini dialect: Gemini embeds text only; send 'input' as a string or a list of strings, not token ids",
            param="input",
            code="unsupported_value",
        )
    name = "models/" + model
    dims = req.dimensions if req.dimensions is not None else UNSET
    requests = [
        _EmbedRequest(model=name, content=_Content(parts=[_TextPart(text=t)]), outputDimensionality=dims)
        for t in texts
        if isinstance(t, str)
    ]
    return _encode(_BatchRequest(requests=requests))


def embeddings_response(data: bytes, *, model: str, base64: bool) -> bytes:
    """A batchEmbedContents answer as OpenAI's list (without usage: Gemini reports none)."""
    try:
        answer = _batch_answer(data)
        vectors = [float32_base64(_floats(e.values)) if base64 else bytes(e.values) for e in answer.embeddings]
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"gemini upstream sent an unreadable embeddings answer: {e}") from None
    return embedding_list(vectors, model=model, usage=None)


# Inbound: a google-genai client's request to OpenAI's, OpenAI's answer to Gemini's.


class _Part(Struct):
    text: str | UnsetType = UNSET
    inlineData: Raw | UnsetType = UNSET
    fileData: Raw | UnsetType = UNSET


class _ClientContent(Struct):
    parts: Annotated[list[_Part], Meta(min_length=1)]


class _ClientItem(Struct):
    content: _ClientContent
    outputDimensionality: Annotated[int, Meta(ge=1)] | None = None


class _ClientBatch(Struct):
    requests: Annotated[list[_ClientItem], Meta(min_length=1, max_length=MAX_INPUTS)]


class _Out(Struct, omit_defaults=True):
    model: str
    input: str | list[str]
    encoding_format: str  # "float", said explicitly: the answer is translated back from it
    dimensions: int | UnsetType = UNSET


_client_item = msgspec.json.Decoder(_ClientItem).decode
_client_batch = msgspec.json.Decoder(_ClientBatch).decode


def _invalid(message: str) -> InvalidRequest:
    """A msgspec validation message as a 400 whose ``param`` names the field."""
    m = _AT.search(message)
    path = m.group("path") if m else ""
    text = message[: m.start()] if m else message
    missing = _MISSING.match(text)
    if missing:
        path = f"{path}.{missing.group('field')}" if path else missing.group("field")
    return InvalidRequest(f"invalid request: {text}", param=path or None, code="invalid_value")


def _text(item: _ClientItem, at: str) -> str:
    texts = []
    for i, part in enumerate(item.content.parts):
        if not isinstance(part.text, str):
            raise InvalidRequest(
                f"{at}content.parts[{i}]: only text parts can be embedded",
                param=f"{at}content.parts[{i}]",
                code="unsupported_value",
            )
        texts.append(part.text)
    text = "".join(texts)
    if not text:
        raise InvalidRequest(f"{at}content: no text to embed", param=f"{at}content", code="invalid_value")
    return text


def client_request(body: bytes, *, model: str, single: bool) -> bytes:
    """An embedContent (``single``) or batchEmbedContents body as an OpenAI request."""
    try:
        items = [_client_item(body)] if single else _client_batch(body).requests
    except msgspec.ValidationError as e:
        raise _invalid(str(e)) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}", code="invalid_json") from None
    at = "" if single else "requests[{}]."
    texts = [_text(item, at.format(i)) for i, item in enumerate(items)]
    dims = {item.outputDimensionality for item in items}
    if len(dims) > 1:
        raise InvalidRequest(
            "outputDimensionality: one value for every request of a batch (to a non-Gemini model)",
            param="requests[0].outputDimensionality",
            code="invalid_value",
        )
    d = dims.pop()
    out = _Out(
        model=model, input=texts[0] if single else texts, encoding_format="float", dimensions=UNSET if d is None else d
    )
    return _encode(out)


def native_request(body: bytes, *, model: str, single: bool) -> bytes:
    """The client's own request(s) for a Gemini target, as batchEmbedContents with the
    target's model; every other field passes as it came (the gateway's ``fallbacks``
    removed)."""
    fields = _fields(body)
    fields.pop("fallbacks", None)
    name = Raw(_encode("models/" + model))
    if single:
        fields["model"] = name
        return _encode({"requests": [fields]})
    requests = _items(fields["requests"])
    for item in requests:
        item["model"] = name
    fields["requests"] = Raw(_encode(requests))
    return _encode(fields)


class _OpenAIItem(Struct):
    embedding: Raw


class _OpenAIAnswer(Struct):
    data: list[_OpenAIItem]


_openai_answer = msgspec.json.Decoder(_OpenAIAnswer).decode
_string = msgspec.json.Decoder(str).decode


def _values(raw: Raw) -> bytes:
    value = bytes(raw)
    if value[:1] == b'"':  # base64: an upstream that sent it whatever was asked
        return _encode(base64_floats(_string(value)))
    return value


def client_answer(data: bytes, *, single: bool) -> bytes:
    """An OpenAI embeddings answer as embedContent's (``single``) or batchEmbedContents'."""
    try:
        values = [_values(item.embedding) for item in _openai_answer(data).data]
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as e:
        raise UpstreamProtocolError(f"upstream sent an unreadable embeddings answer: {e}") from None
    if single:
        return b'{"embedding":{"values":%s}}' % values[0] if values else b'{"embedding":{"values":[]}}'
    return b'{"embeddings":[%s]}' % b",".join(b'{"values":%s}' % v for v in values)


def native_answer(data: bytes, *, single: bool) -> bytes:
    """A Gemini target's batchEmbedContents answer as the client asked: as it came for a
    batch, its one embedding for embedContent."""
    if not single:
        return data
    try:
        first = _items(_fields(data)["embeddings"])[0]
    except (msgspec.ValidationError, msgspec.DecodeError, KeyError, IndexError) as e:
        raise UpstreamProtocolError(f"gemini upstream sent an unreadable embeddings answer: {e!r}") from None
    return b'{"embedding":%s}' % _encode(first)
