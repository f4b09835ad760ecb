"""Module-level encoders and decoders, and the byte surgery on bodies.

The request is decoded twice, cheaply: once into a typed Struct that validates every
documented field (contents are skipped over, not kept), and, only when the upstream
body must differ from the client's, into ``dict[str, Raw]`` whose values are views
into the original buffer, so unknown fields and message contents are copied, never
re-encoded. Responses are enriched by splicing ``extra_fields`` before the closing
brace: the upstream's ``choices`` are never decoded, only required to be there.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from msgspec import Raw

from gateway import screen
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.schemas.chat import ChatCompletionRequest
from gateway.schemas.completions import CompletionRequest
from gateway.schemas.embeddings import EmbeddingsRequest
from gateway.schemas.response import ExtraFields, ResponseHead

T = TypeVar("T")

encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_response_head = msgspec.json.Decoder(ResponseHead).decode

# Keys the gateway consumes and never forwards.
GATEWAY_FIELDS = (b"fallbacks",)
_GATEWAY_KEYS = tuple(k.decode() for k in GATEWAY_FIELDS)

# msgspec's messages end with " - at `$.path`" when the problem is below the root.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def _param(message: str) -> tuple[str, str | None]:
    """Split a msgspec validation message into (message, OpenAI ``param``)."""
    m = _AT.search(message)
    path = m.group("path") if m else ""
    text = message[: m.start()] if m else message
    missing = _MISSING.match(text)
    if missing:
        field = missing.group("field")
        path = f"{path}.{field}" if path else field
    return text, (path or None)


# The top-level keys the gateway routes, authorizes and prices on: given twice, the
# gateway would read the last while an upstream reading the first gets the same bytes.
# Looked for where authorization depends on them (access control configured, ``strict``).
CHAT_KEYS = screen.Keys(("model", "fallbacks", "stream", "stream_options", "max_tokens", "max_completion_tokens"))
TEXT_KEYS = screen.Keys(("model", "fallbacks", "stream", "stream_options", "max_tokens"))
EMBEDDINGS_KEYS = screen.Keys(("model", "fallbacks", "input", "encoding_format"))


def decode_request(decode: msgspec.json.Decoder[T], body: bytes, *, keys: screen.Keys | None = None) -> T:
    """``body`` decoded, or InvalidRequest naming the problem; ``keys``: the top-level
    keys that may not repeat (``screen.check``)."""
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    if keys is not None or not body.isascii():  # the common ASCII body: no call
        screen.check(body, keys)
    try:
        return decode.decode(body)
    except RecursionError:  # the nesting bound (screen.NESTING): the decoder's own
        raise InvalidRequest(screen.NESTING, code="nesting_too_deep") from None
    except msgspec.ValidationError as e:
        text, param = _param(str(e))
        where = f" at '{param}'" if param else ""
        raise InvalidRequest(f"invalid request{where}: {text}", param=param, code="invalid_value") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}", code="invalid_json") from None


_chat_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_completion_decoder = msgspec.json.Decoder(CompletionRequest)


def decode_chat(body: bytes, *, strict: bool = False) -> ChatCompletionRequest:
    """``strict``: a repeated key the gateway reads is a 400 (with access control)."""
    return decode_request(_chat_decoder, body, keys=CHAT_KEYS if strict else None)


def decode_completion(body: bytes, *, strict: bool = False) -> CompletionRequest:
    req = decode_request(_completion_decoder, body, keys=TEXT_KEYS if strict else None)
    prompt = req.prompt
    if isinstance(prompt, list):
        kind = type(prompt[0])
        if any(type(p) is not kind for p in prompt):
            raise InvalidRequest(
                "invalid request at 'prompt': expected a string, a list of strings, "
                "a list of token ids, or a list of token id lists, not a mix",
                param="prompt",
                code="invalid_value",
            )
    return req


_embeddings_decoder = msgspec.json.Decoder(EmbeddingsRequest)


def decode_embeddings(body: bytes, *, strict: bool = False) -> EmbeddingsRequest:
    """An embeddings request; every problem with ``input`` names ``input`` (the
    message says where in it)."""
    try:
        req = decode_request(_embeddings_decoder, body, keys=EMBEDDINGS_KEYS if strict else None)
    except InvalidRequest as e:
        if e.param is not None and e.param.startswith("input"):
            e.param = "input"
        raise
    if req.stream is not msgspec.UNSET:
        raise InvalidRequest(
            "embeddings do not stream: send the request without 'stream'", param="stream", code="unsupported_parameter"
        )
    if isinstance(req.input, list):
        kind = type(req.input[0])
        if any(type(i) is not kind for i in req.input):
            raise InvalidRequest(
                "invalid request at 'input': expected a string, a list of strings, "
                "a list of token ids, or a list of token id lists, not a mix",
                param="input",
                code="invalid_value",
            )
    return req


_INCLUDE_USAGE = Raw(b'{"include_usage":true}')
# A tool call id that carries a Gemini thought signature (``<id>|ts:<base64>``, see
# providers.gemini): as a JSON value of "id" or "tool_call_id", never inside a string
# (where its quotes would be escaped).
_SIGNED_ID = re.compile(rb'("(?:id|tool_call_id)"\s*:\s*"[^"\\|]*)\|ts:[A-Za-z0-9+/=_-]*"')
SIGNATURE_MARK = b"|ts:"


def strip_signatures(body: bytes) -> bytes:
    """``body`` without the Gemini thought signatures in its tool call ids: OpenAI caps
    ids at 40 characters and other servers refuse the ``|``. Callers test
    ``SIGNATURE_MARK in body`` first (a memchr-speed scan), so most bodies never get here."""
    return _SIGNED_ID.sub(rb'\1"', body)


# A translated request's carriers of earlier reasoning on its assistant messages (from a
# Responses reasoning item or an Anthropic thinking block), which the Anthropic and
# Gemini translations read; the Chat Completions API has no input for them. As the
# gateway's encoder writes them: no space before the colon.
_REASONING_KEYS = ("reasoning", "reasoning_content", "reasoning_signature")
_REASONING_MARKS = (b'"reasoning":', b'"reasoning_signature":')
_messages = msgspec.json.Decoder(list[dict[str, Raw]]).decode


def without_reasoning(body: bytes) -> bytes:
    """A translated chat request (the gateway's encoding) without the reasoning fields
    of its messages, for an OpenAI-compatible target: a strict server refuses fields it
    does not know (DeepSeek does ``reasoning_content``). Untouched, and not decoded,
    when it has none."""
    if all(body.find(mark) < 0 for mark in _REASONING_MARKS):
        return body
    fields = _fields(body)
    given = fields.get("messages")
    if given is None:
        return body
    messages = _messages(given)
    changed = False
    for message in messages:
        for key in _REASONING_KEYS:
            changed = message.pop(key, None) is not None or changed
    if not changed:  # the mark was elsewhere (a tool's schema, a text)
        return body
    fields["messages"] = Raw(encode(messages))
    return encode(fields)


def upstream_body(
    body: bytes, *, model: str, rewrite_model: bool, has_gateway_fields: bool, force_usage: bool = False
) -> bytes:
    """The body to send upstream: the client's bytes, with ``model`` swapped, the
    gateway's own fields removed and, with ``force_usage``, the stream's usage asked
    for (``stream_options.include_usage``). Untouched when none is needed."""
    if not rewrite_model and not has_gateway_fields and not force_usage:
        return body
    fields = _fields(body)
    for key in _GATEWAY_KEYS:
        fields.pop(key, None)
    if rewrite_model:
        fields["model"] = Raw(encode(model))
    if force_usage:
        options = fields.get("stream_options")
        if options is None or bytes(options) == b"null":
            fields["stream_options"] = _INCLUDE_USAGE
        else:
            opts = _fields(options)
            opts["include_usage"] = Raw(b"true")
            fields["stream_options"] = Raw(encode(opts))
    return encode(fields)


def response_head(body: bytes) -> ResponseHead:
    try:
        return _response_head(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"upstream returned a body that is not a completion object: {e}") from None


def splice_field(body: bytes, key: bytes, value: bytes) -> bytes:
    """``body`` (a JSON object with no ``key``) with ``"key": value`` appended."""
    end = body.rstrip()
    inner = end[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return b"".join((inner, sep, b'"', key, b'":', value, b"}"))


def enrich(body: bytes, head: ResponseHead, extra: ExtraFields) -> bytes:
    """``body`` with ``extra_fields`` set; ``body`` must be a JSON object (as
    ``response_head`` has checked)."""
    if head.extra_fields is not msgspec.UNSET:
        # An upstream that is itself a gateway: replace its field, rarely taken.
        fields = _fields(body)
        fields["extra_fields"] = Raw(encode(extra))
        return encode(fields)
    return splice_field(body, b"extra_fields", encode(extra))
