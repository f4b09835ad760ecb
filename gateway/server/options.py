"""The ``x-bf-*`` request options of the reference API, read from a request's headers
once, into the ``RequestOptions`` the relay reads (``request_options``): raw
request/response echo, per-request timeouts, a pinned or the client's own provider key,
headers forwarded upstream. Each bad value is a 400 naming its header.

The async-job headers (``x-bf-async``, ``x-bf-async-id``) are only named here: they are
read before the body and credentials, to route the request to ``server.jobs``."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import Forbidden, GatewayError, InvalidRequest
from gateway.governance import DIRECT_KEY_HEADER, PROVIDER_KEY_HEADERS, credential
from gateway.relay.cache import CacheAsk
from gateway.relay.call import NO_OPTIONS, RequestOptions
from gateway.routing.table import Target
from gateway.upstream.client import Timeouts

RAW_REQUEST_HEADER = "x-bf-send-back-raw-request"
RAW_RESPONSE_HEADER = "x-bf-send-back-raw-response"
REQUEST_TIMEOUT_HEADER = "x-bf-request-timeout"
IDLE_TIMEOUT_HEADER = "x-bf-stream-idle-timeout"
# Async inference (server.jobs): submit the request as a job, or poll a job by its id.
ASYNC_HEADER = "x-bf-async"
ASYNC_ID_HEADER = "x-bf-async-id"
# Per-request timeouts are clamped as the reference system clamps them (30 min).
MAX_TIMEOUT_S = 1800.0
API_KEY_HEADER = "x-bf-api-key"  # pins the provider key to use, by its configured name
EXTRA_HEADER_PREFIX = "x-bf-eh-"
# Credentials, framing and hop-by-hop headers: the gateway sets these itself.
DENIED_EXTRA_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "anthropic-version",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "cookie",
        "expect",
    }
)


# The response cache's (relay.cache).
CACHE_KEY_HEADER = "x-bf-cache-key"
CACHE_TTL_HEADER = "x-bf-cache-ttl"
CACHE_NO_STORE_HEADER = "x-bf-cache-no-store"
CACHE_TYPE_HEADER = "x-bf-cache-type"
CACHE_THRESHOLD_HEADER = "x-bf-cache-threshold"
CACHE_HEADERS = (CACHE_KEY_HEADER, CACHE_TTL_HEADER, CACHE_NO_STORE_HEADER, CACHE_TYPE_HEADER, CACHE_THRESHOLD_HEADER)
# A namespace is hashed before it reaches a store; its length is bounded all the same
# (it is held per request and in logs of errors).
MAX_CACHE_KEY_CHARS = 256
# A kept answer lives at most 30 days, as long as a kept Responses API answer.
MAX_CACHE_TTL_S = 30 * 86400.0
_TTL = re.compile(r"^(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h|d)?$")
_TTL_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# What a header value forwarded as is may hold (names: aiohttp's parser admits tokens only).
_NOT_VISIBLE = re.compile(rb"[^\t\x20-\x7e]")


def request_options(request: web.BaseRequest, *, direct_keys: bool) -> RequestOptions:
    """The request's ``x-bf-*`` options, each bad value a 400 naming its header (a 403 for
    ``x-bf-direct-key`` when ``direct_keys``, the operator's ``auth.client_provider_keys``,
    is off). ``NO_OPTIONS`` when none came (or none that the relay reads, such as
    ``x-bf-vk``). What depends on the request's targets is checked by ``check_targets``.

    The common request sends no ``x-bf-*`` header: one scan of the joined raw names tells,
    instead of a lookup per option (each ~0.3 µs; an SDK sends ~17 headers, none of them
    ours). ``find``, not ``in``: CPython's bytes ``in`` first tries the needle as an
    integer and formats the TypeError it then drops (~0.15 µs)."""
    if b"\n".join([name for name, _ in request.raw_headers]).lower().find(b"x-bf-") < 0:
        return NO_OPTIONS
    direct = direct_key(request, enabled=direct_keys)
    limits = timeouts(request)
    pinned = request.headers.get(API_KEY_HEADER)
    extra = extra_headers(request)
    raw_request, raw_response = flag(request, RAW_REQUEST_HEADER), flag(request, RAW_RESPONSE_HEADER)
    cache = cache_ask(request)
    if not (
        raw_request or raw_response or limits or pinned is not None or extra or direct is not None or cache is not None
    ):
        return NO_OPTIONS
    return RequestOptions(
        raw_request=raw_request,
        raw_response=raw_response,
        timeouts=limits,
        pinned_key=pinned,
        extra_headers=extra,
        direct_key=direct,
        cache=cache,
    )


def check_targets(options: RequestOptions, targets: list[tuple[Target, bytes | GatewayError]]) -> None:
    """A 400 when the options do not fit the request's targets: a client's own key goes to
    one provider reached over HTTP; a pinned key must be one of theirs."""
    if options.direct_key is not None:
        provider = targets[0][0].provider
        if not provider.wire.direct_key:  # only providers reached over HTTP take one
            raise InvalidRequest(
                f"provider '{provider.name}' takes no API key: a client provider key goes to a provider reached "
                "over HTTP",
                param="model",
                code="direct_key_unsupported",
            )
        for i, (target, _) in enumerate(targets[1:]):
            if target.provider is not provider:
                raise InvalidRequest(
                    f"a client provider key goes to one provider only: fallbacks[{i}] is on provider "
                    f"'{target.provider.name}', the model on '{provider.name}'",
                    param=f"fallbacks[{i}]",
                    code="direct_key_one_provider",
                )
    name = options.pinned_key
    if name is not None and not any(t.provider.keys.index(name) is not None for t, _ in targets):
        raise InvalidRequest(
            f"header {API_KEY_HEADER}: no provider of this request has a key named {name!r}",
            param=API_KEY_HEADER,
            code="unknown_key",
        )


def flag(request: web.BaseRequest, name: str) -> bool:
    return request.headers.get(name, "").lower() == "true"


def is_async(request: web.BaseRequest) -> bool:
    """An async job's submit (``x-bf-async: true``) or poll (``x-bf-async-id``)."""
    h = request.headers
    return ASYNC_ID_HEADER in h or (ASYNC_HEADER in h and flag(request, ASYNC_HEADER))


def header_seconds(request: web.BaseRequest, name: str, *, max_s: float = MAX_TIMEOUT_S) -> float | None:
    """Header ``name`` as seconds in (0, max_s]; None when absent; otherwise a 400."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        s = float(value)
    except ValueError:
        s = -1.0
    if not 0 < s <= max_s:
        raise InvalidRequest(
            f"header {name} must be a number of seconds in (0, {max_s:g}], got {value!r}",
            param=name,
            code="invalid_header",
        )
    return s


def direct_key(request: web.BaseRequest, *, enabled: bool) -> str | None:
    """The client's own provider key, when it sent ``x-bf-direct-key: true``: read from
    ``Authorization: Bearer``, ``x-api-key``, ``api-key`` or ``x-goog-api-key`` (first
    found), sent to the request's one provider instead of its configured keys. A 403 when
    the operator has not enabled ``auth.client_provider_keys``, never the configured keys."""
    value = request.headers.get(DIRECT_KEY_HEADER)
    if value is None or value.lower() == "false":
        return None
    if value.lower() != "true":
        raise InvalidRequest(
            f"header {DIRECT_KEY_HEADER} must be true or false, got {value!r}",
            param=DIRECT_KEY_HEADER,
            code="invalid_header",
        )
    if not enabled:
        raise Forbidden(
            f"this gateway does not accept clients' own provider keys ({DIRECT_KEY_HEADER}); "
            "its operator can enable them with auth.client_provider_keys",
            param=DIRECT_KEY_HEADER,
            code="direct_keys_disabled",
        )
    if API_KEY_HEADER in request.headers:
        raise InvalidRequest(
            f"headers {DIRECT_KEY_HEADER} and {API_KEY_HEADER} exclude each other: "
            "send the client's own provider key or pin a configured one",
            param=API_KEY_HEADER,
            code="invalid_header",
        )
    key = credential(request.headers, names=PROVIDER_KEY_HEADERS)
    if key is None:
        raise InvalidRequest(
            f"header {DIRECT_KEY_HEADER}: no provider key came; send it as 'Authorization: Bearer ...', "
            "x-api-key, api-key or x-goog-api-key",
            param=DIRECT_KEY_HEADER,
            code="missing_provider_key",
        )
    if not (key.isascii() and key.isprintable()):
        raise InvalidRequest("the provider key must be printable ASCII", param=DIRECT_KEY_HEADER, code="invalid_header")
    return key


def extra_headers(request: web.BaseRequest) -> tuple[tuple[str, str], ...]:
    """``x-bf-eh-<name>: value`` headers, forwarded upstream as ``<name>: value``, each
    with its own value, byte for byte: a value that is not visible ASCII (UTF-8 or
    Latin-1 text, control characters) could not reach the upstream unchanged, a 400."""
    out = []
    for raw, raw_value in request.raw_headers:
        # Most header names do not start with x: one byte test each on the common path.
        if raw[:1] not in b"xX" or raw[:8].lower() != b"x-bf-eh-":
            continue
        name = raw.decode("latin-1")
        forwarded = name[len(EXTRA_HEADER_PREFIX) :].lower()
        if not forwarded or forwarded in DENIED_EXTRA_HEADERS or forwarded.startswith("proxy-"):
            raise InvalidRequest(
                f"header {name} may not be forwarded: '{forwarded}' is set by the gateway or is hop-by-hop",
                param=name,
                code="invalid_header",
            )
        if _NOT_VISIBLE.search(raw_value):
            raise InvalidRequest(
                f"header {name}: its value must be visible ASCII (spaces and tabs allowed); "
                "send other text percent- or base64-encoded",
                param=name,
                code="invalid_header",
            )
        out.append((forwarded, raw_value.decode("ascii")))
    return tuple(out)


def _bad(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"header {name}: {why}", param=name, code="invalid_header")


def cache_ask(request: web.BaseRequest) -> CacheAsk | None:
    """The ``x-bf-cache-*`` headers, checked; None when none came."""
    h = request.headers
    if not any(name in h for name in CACHE_HEADERS):
        return None
    key = h.get(CACHE_KEY_HEADER)
    if key is not None and not (
        0 < len(key) <= MAX_CACHE_KEY_CHARS and key.isascii() and key.isprintable() and key.strip() == key
    ):
        raise _bad(CACHE_KEY_HEADER, f"expected 1 to {MAX_CACHE_KEY_CHARS} visible ASCII characters")
    ttl_s = None
    text = h.get(CACHE_TTL_HEADER)
    if text is not None:
        m = _TTL.match(text.strip().lower())
        ttl_s = float(m.group("n")) * _TTL_UNITS[m.group("unit")] if m else -1.0
        if not 0 < ttl_s <= MAX_CACHE_TTL_S:
            raise _bad(CACHE_TTL_HEADER, f"expected a duration (30s, 5m, 2h, or seconds), at most 30d; got {text!r}")
    no_store = h.get(CACHE_NO_STORE_HEADER)
    if no_store is not None and no_store.lower() not in ("true", "false"):
        raise _bad(CACHE_NO_STORE_HEADER, f"expected true or false, got {no_store!r}")
    kind = h.get(CACHE_TYPE_HEADER)
    if kind is not None and kind.lower() not in ("direct", "semantic"):
        raise _bad(CACHE_TYPE_HEADER, f"expected direct or semantic, got {kind!r}")
    threshold = None
    text = h.get(CACHE_THRESHOLD_HEADER)
    if text is not None:
        try:
            threshold = float(text)
        except ValueError:
            threshold = -1.0
        if not 0 <= threshold <= 1:  # NaN fails too
            raise _bad(CACHE_THRESHOLD_HEADER, f"expected a cosine similarity in [0, 1], got {text!r}")
    return CacheAsk(
        key=key,
        ttl_s=ttl_s,
        no_store=no_store is not None and no_store.lower() == "true",
        direct=kind is None or kind.lower() == "direct",
        semantic=kind is None or kind.lower() == "semantic",
        threshold=threshold,
    )


def timeouts(request: web.BaseRequest) -> Timeouts | None:
    total = header_seconds(request, REQUEST_TIMEOUT_HEADER)
    idle = header_seconds(request, IDLE_TIMEOUT_HEADER)
    return None if total is None and idle is None else Timeouts(total, idle)
