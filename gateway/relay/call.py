"""One client request on its way through the relay: its ``Call`` (the plan, the
client's ``RequestOptions``, the outcome) and how an upstream's error answer is read."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

import msgspec
from msgspec import UNSET, Raw, UnsetType

from gateway.accounting.ledger import Ledger
from gateway.accounting.usage import Cost, Usage
from gateway.errors import GatewayError, UpstreamStatusError
from gateway.providers import Endpoint
from gateway.providers.dialect import Dialect
from gateway.routing.table import Target
from gateway.schemas.response import CacheDebug, ExtraFields
from gateway.upstream.client import Reply, Timeouts
from gateway.upstream.relayed import client_headers, retry_after_s

if TYPE_CHECKING:
    from gateway.relay.cache import CacheAsk, CacheTicket

# Response headers named as the reference API names them.
PROVIDER_HEADER = "x-bifrost-provider"
FALLBACK_HEADER = "x-bifrost-fallback-index"  # only when a fallback served


class Keep(Protocol):
    """Keeps a complete answer in the client's dialect (a Responses API answer, for
    previous_response_id and GET /v1/responses/{id}): server.responses_state. One a
    ``native`` target served is kept by its upstream: only where is recorded."""

    def __call__(self, response: bytes, *, native: Target | None = None) -> Awaitable[None]: ...


_encode = msgspec.json.Encoder().encode
# The constant part of a plain answer's extra_fields per (request type, provider,
# requested model, deployed model), everything before the latency's value. Bounded: the
# requested model is the client's string.
_EXTRA_PREFIXES: dict[tuple[str, str, str, str], bytes] = {}
_MAX_EXTRA_PREFIXES = 4096
# An attempt begun at or past the client's deadline still goes out with this much time,
# so it ends as a prompt 504 rather than a request without any bound.
MIN_ATTEMPT_S = 0.001
_LATENCY = b'"latency":'


def answer_headers(provider: str, index: int, relayed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A relayed answer's own headers: the provider that served it, the fallback's index
    when a fallback did, and the upstream's headers the client may see."""
    headers = [(PROVIDER_HEADER, provider)]
    if index:
        headers.append((FALLBACK_HEADER, str(index)))
    if relayed:
        headers += client_headers(relayed)
    return headers


class RequestOptions:
    """What a client asked of one request through ``x-bf-*`` headers, as the relay reads
    it on every attempt; parsed and checked by ``gateway.server.options.request_options``.
    Not changed once built: the common request, without any, shares ``NO_OPTIONS``.

    A plain class, not a Struct: ``direct_key`` is a secret, and a Struct's encoders and
    rich repr would show it. ``repr`` hides it."""

    __slots__ = ("cache", "direct_key", "extra_headers", "pinned_key", "raw_request", "raw_response", "timeouts")

    def __init__(
        self,
        *,
        raw_request: bool = False,
        raw_response: bool = False,
        timeouts: Timeouts | None = None,
        pinned_key: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        direct_key: str | None = None,
        cache: CacheAsk | None = None,
    ) -> None:
        # x-bf-send-back-raw-request/-response: the upstream's request and answer
        # echoed in extra_fields.
        self.raw_request = raw_request
        self.raw_response = raw_response
        self.timeouts = timeouts  # x-bf-request-timeout, x-bf-stream-idle-timeout; None: the provider's
        self.pinned_key = pinned_key  # x-bf-api-key: the provider key to use, by name
        self.extra_headers = extra_headers  # x-bf-eh-*: forwarded upstream
        # x-bf-direct-key: the client's own provider key, sent instead of the configured
        # ones (every target is on one provider, see server.options.check_targets). Held
        # for the request only: never logged, recorded or answered.
        self.direct_key = direct_key
        # x-bf-cache-*: the response cache's namespace, TTL, type, threshold, no-store.
        self.cache = cache

    def forwarding(self, headers: tuple[tuple[str, str], ...]) -> RequestOptions:
        """These options with ``headers`` forwarded upstream too."""
        return RequestOptions(
            raw_request=self.raw_request,
            raw_response=self.raw_response,
            timeouts=self.timeouts,
            pinned_key=self.pinned_key,
            extra_headers=self.extra_headers + headers,
            direct_key=self.direct_key,
            cache=self.cache,
        )

    def __repr__(self) -> str:
        secret = None if self.direct_key is None else "<hidden>"
        return (
            f"RequestOptions(raw_request={self.raw_request!r}, raw_response={self.raw_response!r}, "
            f"timeouts={self.timeouts!r}, pinned_key={self.pinned_key!r}, "
            f"extra_headers={self.extra_headers!r}, cache={self.cache!r}, direct_key={secret})"
        )


# The options of every request that sends no x-bf-* option: one object, never a new one.
NO_OPTIONS = RequestOptions()


class Call:
    """One request as the relay runs it: the plan (what was asked, where it may go, with
    which bodies), fixed before the first upstream attempt by ``server.plan``; the
    client's options; and what the relay found out, for accounting and the access log.

    Flat, not grouped into sub-objects: the relay reads these on every attempt and chunk
    setup, and access.py on every answer; one attribute load each."""

    __slots__ = (
        # the plan
        "body",
        "client",
        "client_body",
        "client_usage",
        "endpoint",
        "request_type",
        "requested",
        "t0",
        "targets",
        # the client's x-bf-* options
        "options",
        # the request's part in the response cache (relay.cache; None: it takes none)
        "cache",
        # what keeps the complete answer (None: nothing is kept)
        "keep",
        # the process's accounting, which the relay records into
        "ledger",
        # the outcome
        "abandoned",
        "principal",
        "served_index",
        "upstream_s",
        "used_cost",
        "used_in",
        "used_out",
        "used_tokens",
    )

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        request_type: str,
        requested: str,
        targets: list[tuple[Target, bytes | GatewayError]],
        body: bytes,
        t0: float,
        client_usage: bool,
        ledger: Ledger,
        options: RequestOptions = NO_OPTIONS,
        client: Dialect | None = None,
        client_body: bytes = b"",
    ) -> None:
        self.endpoint = endpoint
        self.request_type = request_type
        self.requested = requested
        # (target, upstream body) per attempt: the primary, then each fallback; an
        # error instead of a body when that target cannot take the request.
        self.targets = targets
        # The request in OpenAI's form (the client's bytes on the OpenAI routes): what
        # prompt tokens are counted from and governance estimates from.
        self.body = body
        self.t0 = t0
        # The client asked for the stream's usage chunk (stream_options.include_usage).
        self.client_usage = client_usage
        # The client's wire format at an SDK drop-in route (the anthropic or gemini
        # dialect); None: OpenAI. Answers go back in it; a target of the same dialect is
        # passed through.
        self.client = client
        # The client's own request at a drop-in route (what its answer may echo).
        self.client_body = client_body
        self.options = options
        self.cache: CacheTicket | None = None
        self.keep: Keep | None = None
        # Held by the call, not imported: the relay has no other handle on the process's
        # metrics and pricing, and a module-level one would be shared mutable state.
        self.ledger = ledger
        # What the request consumed, as accounted (charged to a virtual key at the end).
        self.used_tokens = 0
        self.used_in = 0
        self.used_out = 0
        self.used_cost: float | None = 0.0
        # For metrics and the access log: the target that answered (-1: none did), the
        # time spent waiting on upstreams, the governed caller's id.
        self.served_index = -1
        self.upstream_s = 0.0
        self.principal: str | None = None
        # The client went away before its answer was complete: recorded as a 499
        # (server.access), charged for what had passed.
        self.abandoned = False

    def charge(self, usage: Usage, cost: Cost | None) -> None:
        self.used_in = usage.prompt_tokens
        self.used_out = usage.completion_tokens
        self.used_tokens = usage.prompt_tokens + usage.completion_tokens
        self.used_cost = cost.total_cost if cost is not None else None  # unpriced: unknown, not 0
        ticket = self.cache
        if ticket is not None and ticket.spent_tokens:  # a semantic lookup's embedding, spent too
            self.used_in += ticket.spent_tokens
            self.used_tokens += ticket.spent_tokens
            if self.used_cost is not None and ticket.spent_cost is not None:
                self.used_cost += ticket.spent_cost

    def served_by(self) -> Target | None:
        """The target that answered, else the primary (whose error the client got)."""
        targets = self.targets
        return targets[self.served_index if self.served_index >= 0 else 0][0] if targets else None

    def send(self, target: Target, body: bytes, key: int, *, stream: bool) -> Awaitable[Reply]:
        """One attempt's upstream request with this call's options (timeouts, extra headers,
        the client's own key). Not a coroutine: the caller awaits the provider's own."""
        options = self.options
        timeouts = options.timeouts
        if timeouts is not None:
            timeouts = self.timeouts_left()
        endpoint = self.endpoint
        if target.native:  # the Responses API's own: a token count, or the request
            endpoint = "responses_input_tokens" if endpoint == "count_tokens" else "responses"
        return target.provider.send(
            endpoint,
            body,
            stream=stream,
            timeouts=timeouts,
            key=key,
            model=target.model,
            extra=options.extra_headers,
            secret=options.direct_key,
        )

    def timeouts_left(self) -> Timeouts | None:
        """The client's timeouts for an attempt starting now. Its x-bf-request-timeout is
        a deadline from the request's arrival: an attempt after a retry, a fallback or a
        queue gets what is left of it."""
        timeouts = self.options.timeouts
        if timeouts is not None and timeouts.request_s:
            left = self.t0 + timeouts.request_s - time.perf_counter()
            timeouts = Timeouts(max(left, MIN_ATTEMPT_S), timeouts.stream_idle_s)
        return timeouts

    def passthrough(self, target: Target) -> bool:
        """The client and the target speak the same dialect: bytes pass untranslated."""
        return self.client is not None and target.provider.wire is self.client

    def latency_ms(self) -> float:
        """Milliseconds since the request arrived, to 3 decimals (half a microsecond up).
        ``plain_extra_fields`` inlines the same expression: both give the same number."""
        return int((time.perf_counter() - self.t0) * 1e6 + 0.5) / 1000

    def plain_extra_fields(self, target: Target) -> bytes:
        """``encode(self.extra_fields(target))`` for the common answer (no chunk index,
        usage reported, nothing raw), from a cached prefix: ~1.5 µs less a request."""
        key = (self.request_type, target.provider.name, self.requested, target.model)
        prefix = _EXTRA_PREFIXES.get(key)
        if prefix is None:
            if len(_EXTRA_PREFIXES) >= _MAX_EXTRA_PREFIXES:
                _EXTRA_PREFIXES.clear()
            full = _encode(
                ExtraFields(
                    request_type=key[0], provider=key[1], model_requested=key[2], model_deployment=key[3], latency=0.0
                )
            )
            prefix = _EXTRA_PREFIXES[key] = full[: full.rindex(_LATENCY) + len(_LATENCY)]
        # latency_ms(), inlined.
        return b"%s%s}" % (prefix, _encode(int((time.perf_counter() - self.t0) * 1e6 + 0.5) / 1000))

    def extra_fields(
        self,
        target: Target,
        *,
        chunk_index: int | UnsetType = UNSET,
        estimated: bool = False,
        raw_request: bytes | None = None,
        raw_response: bytes | None = None,
        cache_debug: CacheDebug | UnsetType = UNSET,
    ) -> ExtraFields:
        return ExtraFields(
            request_type=self.request_type,
            provider=target.provider.name,
            model_requested=self.requested,
            model_deployment=target.model,
            latency=self.latency_ms(),
            chunk_index=chunk_index,
            usage_estimated=True if estimated else UNSET,
            raw_request=Raw(raw_request) if raw_request is not None else UNSET,
            raw_response=Raw(raw_response) if raw_response is not None else UNSET,
            cache_debug=cache_debug,
        )


class _ErrorObject(msgspec.Struct):
    message: str


class _OpenAIError(msgspec.Struct):
    error: _ErrorObject


class _LooseError(msgspec.Struct):
    """Ollama's ``{"error": "text"}``, older vLLM's ``{"message": "text"}``."""

    error: str | None = None
    message: str | None = None


_openai_error = msgspec.json.Decoder(_OpenAIError).decode
_loose_error = msgspec.json.Decoder(_LooseError).decode


def status_error(
    provider: str, status: int, data: bytes, headers: list[tuple[str, str]] | None = None
) -> UpstreamStatusError:
    """An upstream error answer, relayed as is when it is already an OpenAI error body,
    otherwise wrapped into one that quotes the upstream's message. The upstream's
    rate-limit headers and Retry-After go back with it."""
    err = _status_error(provider, status, data)
    if headers:
        err.headers = tuple(client_headers(headers))
        err.retry_after_s = retry_after_s(headers)
    return err


def _status_error(provider: str, status: int, data: bytes) -> UpstreamStatusError:
    try:
        _openai_error(data)
        return UpstreamStatusError(f"provider '{provider}' answered HTTP {status}", status=status, body=data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        loose = _loose_error(data)
        text = loose.error or loose.message or ""
    except (msgspec.ValidationError, msgspec.DecodeError):
        text = data[:200].decode("utf-8", "replace")
    err = UpstreamStatusError(
        f"provider '{provider}' answered HTTP {status}" + (f": {text}" if text else ""), status=status, body=None
    )
    err.type = "rate_limit_error" if status == 429 else "upstream_error" if status >= 500 else "invalid_request_error"
    err.code = f"upstream_http_{status}"
    return err
