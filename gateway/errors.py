"""The error tree and the one place errors become OpenAI error bodies.

Every failure the gateway reports is a ``GatewayError``; its class fixes the HTTP
status and the OpenAI ``type``. Upstream failures are classified once, where they
are caught (``gateway.upstream``), into the ``Upstream*`` subclasses.
"""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct, omit_defaults=False):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


_encode = msgspec.json.Encoder().encode


class GatewayError(Exception):
    """Base of every error the gateway answers with."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None
    # HTTP headers the answer carries (an upstream 429's Retry-After and rate-limit headers).
    headers: tuple[tuple[str, str], ...] = ()
    # When several targets were tried: one entry per attempt, listed in the error body's
    # extra_fields.attempts.
    attempts: list[Attempt] | None = None
    # The caller it was refused for, when known (a refused key's principal id): logged.
    principal: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> bytes:
        return _encode(ErrorBody(ErrorDetail(self.message, self.type, self.param, self.code)))


class Attempt(msgspec.Struct, kw_only=True):
    provider: str
    model: str
    status: int
    code: str | None
    message: str


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "unknown_url"


class ModelNotFound(GatewayError):
    """No configured provider serves the model (OpenAI's own status and code for an
    unknown model)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request body did not arrive in time (``server.body_timeout_s``,
    ``server.body_min_bytes_per_s``)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class UnsupportedContentEncoding(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_content_encoding"


class ExpectationFailed(GatewayError):
    status = 417
    type = "invalid_request_error"
    code = "expectation_failed"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class RateLimited(GatewayError):
    """A virtual key's rate limit or concurrency cap; ``Retry-After`` says when to come back."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    status = 402
    type = "budget_exceeded"
    code = "budget_exceeded"


class StoreUnavailable(GatewayError):
    """The shared state store (Redis) cannot be reached and the gateway fails closed."""

    status = 503
    type = "server_error"
    code = "store_unavailable"


class ServerShuttingDown(GatewayError):
    """The gateway is shutting down and its grace has run out: a stream still running ends
    with this as its error frame, one not yet begun is answered with it."""

    status = 503
    type = "server_error"
    code = "server_shutting_down"


class UpstreamError(GatewayError):
    """The provider could not give a usable answer."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamConnectError(UpstreamError):
    """Connection refused, reset before a response, DNS failure, TLS failure."""

    code = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """The upstream answered with something that is not the dialect it speaks."""

    code = "upstream_bad_response"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; its body is relayed as is when it
    is already an OpenAI error body."""

    def __init__(self, message: str, *, status: int, body: bytes | None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.upstream_body = body
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        return self.upstream_body if self.upstream_body is not None else super().body()


def unexpected() -> GatewayError:
    """The error for a bug in the gateway: no detail leaks to the client."""
    return GatewayError("internal gateway error; see the gateway log", code="internal_error")


def render_unexpected() -> tuple[int, bytes]:
    err = unexpected()
    return err.status, err.body()
