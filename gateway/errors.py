"""The error tree and the one place errors become OpenAI error bodies.

Every failure the gateway reports is a ``GatewayError``; its class fixes the HTTP
status and the OpenAI ``type``. Upstream failures are classified once, where they
are caught (``gateway.upstream.client``), into the ``Upstream*`` subclasses.
"""

from __future__ import annotations

from typing import NamedTuple

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


class PoolExhausted(UpstreamError):
    """Every connection the gateway may hold to the upstream's origin (its provider's
    ``max_connections``) stayed busy while the request waited for one (``pool_timeout_s``,
    or what was left of the request's own timeout). Nothing was sent: the next fallback
    is tried, and the key is not held to blame."""

    status = 503
    code = "upstream_pool_exhausted"


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


class Failure(NamedTuple):
    """What one failed attempt means for the next, decided once (``classify``)."""

    retry: bool  # the same key may be answered otherwise on another try (after a backoff)
    rotate_key: bool  # move to another key of the provider, when there is one
    fall_back: bool  # another target (a fallback) may succeed
    cooldown_s: float | None  # the key is skipped this long from now (None: not at once)
    strike: bool  # counts toward the key's consecutive-failure cool-down


# The request's own fault, or a verdict any provider would give: nothing to try again.
_FINAL = Failure(retry=False, rotate_key=False, fall_back=False, cooldown_s=None, strike=False)
# The provider's fault (a 5xx, a timeout, a reset, garbage): again, or elsewhere.
_PROVIDER_FAULT = Failure(retry=True, rotate_key=False, fall_back=True, cooldown_s=None, strike=True)
# The gateway's own refusal of one target (busy, no key for the model, untranslatable).
_TARGET_REFUSED = Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False)
DEFAULT_RATE_LIMIT_COOLDOWN_S = 1.0  # a 429 without Retry-After


def classify(err: GatewayError, *, key_cooldown_s: float = 0.0) -> Failure:
    """The one failure policy: retries, key rotation and cool-down, fallbacks; every
    decision about a failed attempt reads it (``relay.attempts``, ``routing.keys``).

    - Every 5xx (Anthropic's 529 ``overloaded_error``, 501 and 505 included), 408, a
      timeout, a broken connection or answer: the provider's fault. Retried (after a
      backoff), then fallen back; a strike against the key.
    - 429: another key if there is one, else the same after its Retry-After; the key
      cools for that long (1 s without one, at most ``key_cooldown_s``); falls back.
    - 401, 403: the key was refused: it cools for ``key_cooldown_s`` and another key is
      tried; the same key never again. No fallback (another provider would not make the
      request valid; an operator's key problem shows as it is).
    - 409: no retry, but a fallback may serve it.
    - Any other 4xx: the request's own fault. Final, and no mark against the key.
    - The gateway's own refusal of a target (busy, its connection pool exhausted, no
      key for the model, a field its dialect cannot carry): the next target."""
    if isinstance(err, UpstreamStatusError):
        status = err.status
        if status >= 500 or status == 408:
            return _PROVIDER_FAULT
        if status == 429:
            after = err.retry_after_s if err.retry_after_s is not None else DEFAULT_RATE_LIMIT_COOLDOWN_S
            return Failure(
                retry=True, rotate_key=True, fall_back=True, cooldown_s=min(after, key_cooldown_s), strike=False
            )
        if status in (401, 403):
            return Failure(retry=False, rotate_key=True, fall_back=False, cooldown_s=key_cooldown_s, strike=False)
        if status == 409:
            return Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False)
        return _FINAL
    if isinstance(err, PoolExhausted):
        return _TARGET_REFUSED
    if isinstance(err, UpstreamError):
        return _PROVIDER_FAULT
    return _TARGET_REFUSED


class HandlerTimeout(GatewayError):
    """A timeout that no boundary classified: aiohttp answers a ``TimeoutError`` out of
    a handler as a 504 of its own (``server.protocol`` words it as this error)."""

    status = 504
    type = "server_error"
    code = "timeout"


def unexpected() -> GatewayError:
    """The error for a bug in the gateway: no detail leaks to the client."""
    return GatewayError("internal gateway error; see the gateway log", code="internal_error")


def render_unexpected() -> tuple[int, bytes]:
    err = unexpected()
    return err.status, err.body()
