"""Error bodies between the dialects, the stream's in-band error, and the decoding
helpers that turn msgspec's failures into the gateway's error tree."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers.anthropic.schema import (
    ChatError,
    ChatErrorBody,
    ChatErrorOut,
    Completion,
    ErrorAnswer,
    ErrorOut,
    ErrorResponse,
)
from gateway.screen import NESTING

T = TypeVar("T")

DIALECT = "anthropic"
# How much of a body that is not the expected error object an error message quotes.
QUOTE_CHARS = 200

_encode = msgspec.json.Encoder().encode
_error_response = msgspec.json.Decoder(ErrorResponse).decode
_openai_error = msgspec.json.Decoder(Completion).decode

# Anthropic error type -> OpenAI error type. Anthropic's server-side failures become
# the gateway's own ``upstream_error``: to the OpenAI client the gateway is the server.
OPENAI_TYPES: dict[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "billing_error": "insufficient_quota",
    "api_error": "upstream_error",
    "overloaded_error": "upstream_error",
    "timeout_error": "upstream_error",
}
# HTTP status -> Anthropic error type, as Anthropic's errors page lists them, except 413:
# its "request_too_large" comes from Anthropic's CDN and is not in the SDKs' ErrorType.
ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# An in-band OpenAI error frame has no status: its ``type`` decides.
_TYPES_BY_OPENAI: dict[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "insufficient_quota": "billing_error",
}


class StreamError(UpstreamProtocolError):
    """An ``error`` event in an Anthropic stream (overloaded, for one, after a 200)."""

    def __init__(self, message: str, type: str) -> None:
        super().__init__(f"{DIALECT} upstream stream error ({type}): {message}", code=type)
        self.anthropic_type = type
        self.anthropic_message = message


def quote(data: bytes) -> str:
    return data[: QUOTE_CHARS * 4].decode("utf-8", "replace")[:QUOTE_CHARS]


def error_body(status: int, data: bytes) -> bytes:
    """An Anthropic error answer -> an OpenAI error body."""
    try:
        err = _error_response(data).error
        kind, message, code = OPENAI_TYPES.get(err.type), err.message, err.type
    except (msgspec.ValidationError, msgspec.DecodeError):
        kind, code = None, None
        message = f"{DIALECT} upstream answered HTTP {status}: {quote(data)}"
    if kind is None:
        kind = "upstream_error" if status >= 500 else "invalid_request_error"
    return _encode(ChatErrorBody(error=ChatErrorOut(message=message, type=kind, param=None, code=code)))


def anthropic_type(status: int) -> str:
    return ANTHROPIC_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def messages_error(status: int, data: bytes) -> bytes:
    """An OpenAI error body -> an Anthropic error answer."""
    try:
        err = _openai_error(data).error
    except (msgspec.ValidationError, msgspec.DecodeError):
        err = None
    message = err.message if isinstance(err, ChatError) and err.message else f"HTTP {status}: {quote(data)}"
    return _encode(ErrorAnswer(error=ErrorOut(type=anthropic_type(status), message=message)))


def stream_error_type(openai_type: str | None) -> str:
    return _TYPES_BY_OPENAI.get(openai_type or "", "api_error")


# msgspec's messages end with " - at `$.path`" when the problem is below the root.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def decode_request(decode: msgspec.json.Decoder[T], body: bytes, *, what: str) -> T:
    """A client's body, or InvalidRequest naming the param at fault."""
    try:
        return decode.decode(body)
    except RecursionError:  # the route's own decode reached the same bound first
        raise InvalidRequest(NESTING, code="nesting_too_deep") from None
    except msgspec.ValidationError as e:
        text = str(e)
        m = _AT.search(text)
        path = m.group("path") if m else ""
        text = text[: m.start()] if m else text
        missing = _MISSING.match(text)
        if missing:
            path = f"{path}.{missing.group('field')}" if path else missing.group("field")
        raise InvalidRequest(f"invalid {what} at '{path}': {text}", param=path or None, code="invalid_value") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"{what} is not valid JSON: {e}", code="invalid_json") from None


def decode_upstream(decode: msgspec.json.Decoder[T], data: bytes, *, what: str) -> T:
    """An upstream's body, or UpstreamProtocolError naming the dialect."""
    try:
        return decode.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"upstream sent {what} that is not valid: {e}") from None
