"""Configuration: frozen msgspec Structs, decoded once at start-up.

A config file may be JSON, YAML or TOML (chosen by suffix). Unknown keys are
errors naming the key and the file. Secrets are written as ``env.VAR_NAME`` and
resolved here, the only module that reads the environment.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct

from gateway.proxy import Proxy, environment_proxies, proxy_for

Seconds = Annotated[float, Meta(gt=0)]
Share = Annotated[float, Meta(ge=0, le=1)]

ENV_PREFIX = "env."
# Gateway tokens, virtual keys and the admin token: guessable secrets are refused.
MIN_SECRET_CHARS = 16
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Without /v1: the gateway appends /v1/messages and /v1beta/models/..., as the SDKs do.
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class ConfigError(Exception):
    """A configuration that cannot be served; the message names the file and key (every
    problem found, one per line, when there are several)."""


class Problems:
    """What checking a config found. Errors stop it from being served; a missing
    environment variable is an error to ``serve`` and reported by ``gateway check``
    (which passes without them, so a file can be checked where its secrets are not set);
    warnings are logged at start-up and printed by ``gateway check``."""

    __slots__ = ("errors", "missing", "warnings")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.missing: list[str] = []  # "where: environment variable X is not set"
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def raise_if_any(self, *, missing_env: bool = True) -> None:
        found = self.errors + (self.missing if missing_env else [])
        if len(found) == 1:
            raise ConfigError(found[0])
        if found:
            raise ConfigError(f"{len(found)} problems:\n" + "\n".join(f"  {m}" for m in found))


class KeyConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    value: str  # the secret, or "env.VAR_NAME"
    name: str = "default"
    weight: Annotated[float, Meta(gt=0)] = 1.0
    # Models (as the upstream names them) this key may be used for; empty: every model.
    models: tuple[str, ...] = ()


class RetryConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Retries of one provider before the next fallback: 429/401/403 move to another
    key, 5xx and network failures retry the same one; waits grow exponentially with
    full jitter and never outlast the request's timeout."""

    # 0, as the reference system: a gateway that retries by default multiplies the load
    # on a provider that is already failing.
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 0
    backoff_initial_s: Annotated[float, Meta(ge=0, le=60)] = 0.25
    backoff_max_s: Annotated[float, Meta(ge=0, le=300)] = 4.0


class LimitConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Upstream requests in flight per provider (streams count until they end)."""

    max_concurrency: Annotated[int, Meta(ge=1)] | None = None  # None: unlimited
    # Requests waiting for a slot; beyond it a 429 at once (bounded memory).
    queue_size: Annotated[int, Meta(ge=0)] = 1000
    # A request that waited this long for a slot gets a 429.
    queue_timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    # True: no queue: a 429 as soon as max_concurrency is reached.
    drop_excess_requests: bool = False


class TimeoutConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    connect_s: Seconds = 10.0
    # A whole unary call. Long reasoning models take minutes; 30 s defaults are the
    # reference system's most reported complaint, so the default is generous.
    request_s: Seconds = 300.0
    # Between two reads of a stream.
    stream_idle_s: Seconds = 120.0
    # Before a stream's first chunk (a reasoning model may think first); default: stream_idle_s.
    first_byte_s: Seconds | None = None


class MockConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The built-in fake LLM: size, pace and faults of its answers."""

    tokens: Annotated[int, Meta(ge=0, le=1_000_000)] = 16
    ttft_ms: Annotated[float, Meta(ge=0)] = 0.0
    itl_ms: Annotated[float, Meta(ge=0)] = 0.0
    error_rate: Share = 0.0
    error_status: tuple[Annotated[int, Meta(ge=400, le=599)], ...] = (429, 500)
    reset_rate: Share = 0.0
    # False: never report usage, like many self-hosted servers.
    usage: bool = True
    models: tuple[str, ...] = ("mock-chat", "mock-instruct")


class PriceConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """USD prices of one model, overriding the pricing data (self-hosted models)."""

    input_mtok: Annotated[float, Meta(ge=0)] = 0.0
    output_mtok: Annotated[float, Meta(ge=0)] = 0.0
    cache_read_mtok: Annotated[float, Meta(ge=0)] | None = None  # None: billed as input
    request_kcount: Annotated[float, Meta(ge=0)] = 0.0  # per 1000 requests


class ProviderConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    dialect: Literal["openai", "anthropic", "gemini", "mock"] = "openai"
    base_url: str = ""
    keys: tuple[KeyConfig, ...] = ()
    headers: dict[str, str] = {}
    # Listed by GET /v1/models; empty means "ask the upstream's /models".
    models: tuple[str, ...] = ()
    timeouts: TimeoutConfig = TimeoutConfig()
    mock: MockConfig = MockConfig()
    # The provider's id in the pricing data (openai, anthropic, groq, google, ...);
    # default: matched from base_url. The mock provider prices by model name alone.
    pricing_provider: str | None = None
    # Per-model prices that win over the pricing data, e.g. for a self-hosted model.
    prices: dict[str, PriceConfig] = {}
    # Stream usage: "upstream" trusts the upstream to report it (no decoding per chunk),
    # "count" always counts deltas with the tokenizer, "auto" trusts the upstream until
    # one of its streams ends without usage, then counts.
    stream_usage: Literal["auto", "upstream", "count"] = "auto"
    # The upstream client: "pool", the gateway's own keep-alive HTTP/1.1 pool
    # (gateway/pool.py; 0.6-0.7x the CPU of an aiohttp forwarder per request), or
    # "aiohttp", ClientSession, for what the pool does not do (compressed bodies).
    client: Literal["aiohttp", "pool"] = "pool"
    # PEM file of CA certificates trusted for this provider's TLS (default: the system's).
    ca_file: str | None = None
    # The forward proxy to the upstream, for both clients: "env" (HTTPS_PROXY for an
    # https base_url, HTTP_PROXY for an http one, else ALL_PROXY; unless NO_PROXY names
    # its host; read once at start-up), "none" (direct), or "http://[user:pass@]host:port"
    # (env.VAR_NAME for one with a password). As served: "none" or the proxy's URL.
    proxy: str = "env"
    retries: RetryConfig = RetryConfig()
    limits: LimitConfig = LimitConfig()
    # A unary answer or error body longer than this is refused (502): 128k output tokens
    # are ~0.5 MB of JSON (a few MB escaped or with logprobs), so 16 MiB is far above any
    # real completion while bounding the memory one request can pin.
    max_response_bytes: Annotated[int, Meta(ge=1024)] = 16 * 1024 * 1024
    # How long a key the upstream refused, rate-limited or kept failing is skipped.
    key_cooldown_s: Annotated[float, Meta(ge=0)] = 30.0


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    # Images sent inline as base64 make large chat bodies legitimate; 16 MiB covers
    # OpenAI's own image limits while bounding memory per request.
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 16 * 1024 * 1024
    # One request line or header line; aiohttp's default.
    max_header_bytes: Annotated[int, Meta(ge=1024, le=65536)] = 8190
    max_headers: Annotated[int, Meta(ge=8, le=1024)] = 128
    # From a request's first byte to the end of its headers; past it a 408 and the
    # connection closes. Clients send a head in one write: seconds are generous.
    header_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    # Reading one request body, in all: 16 MiB (max_body_bytes) at ~140 KB/s.
    body_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    # ... and at least this many bytes a second on average, after a grace of 5 s (a
    # body that trickles ties up a connection for less than the total allows). 0: no minimum.
    body_min_bytes_per_s: Annotated[int, Meta(ge=0)] = 1024
    # A connection with no request begun is closed after this long: 75 s, as nginx,
    # above the 60 s idle timeout of common load balancers (they close first, cleanly).
    keepalive_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 75.0
    # Client connections one process keeps open; past it new ones are closed as they are
    # accepted (gateway_connections_refused_total). None: derived from the descriptor
    # limit, which start-up raises to its hard limit: half of it less 64 (each connection
    # may hold an upstream connection too).
    max_connections: Annotated[int, Meta(ge=1)] | None = None
    # One JSON line per answered request on stdout (request id, principal, provider,
    # model, status, tokens, cost, latency; never content or keys). Metrics are kept
    # either way.
    access_log: bool = True
    # Also the client's request body and a whole answer's body (each up to 32 KiB; stream
    # answers never) in those lines. Off: message content is never logged.
    access_log_content: bool = False
    # Processes serving the port, each with its own event loop and upstream connections,
    # under a supervisor that restarts them (SO_REUSEPORT: the kernel spreads connections).
    # None: one per CPU core. 1: this process serves, no supervisor.
    workers: Annotated[int, Meta(ge=1, le=512)] | None = None
    # After SIGTERM: how long in-flight requests, streams and async jobs have to finish
    # before they are cancelled.
    shutdown_grace_s: Annotated[float, Meta(ge=0, le=3600)] = 10.0
    # After SIGTERM and before the listener closes: /health already answers 503 "draining"
    # and requests are still served, so a load balancer stops sending first (Kubernetes:
    # about its probe period; 0 closes at once).
    drain_delay_s: Annotated[float, Meta(ge=0, le=600)] = 0.0
    # Join a port another gateway (of the same user) already serves, sharing its connections
    # (SO_REUSEPORT): how a new gateway takes over from an old one without a gap. False: a
    # port in use is an error at start-up, whatever the number of workers.
    reuse_port: bool = False


# Windows of budgets and rate limits: 30s (tests), 1m, 5m, 1h, 1d, 1w, 1M.
WindowText = Annotated[str, Meta(pattern=r"^(30s|1m|5m|1h|1d|1w|1M)$")]


class BudgetConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    usd: Annotated[float, Meta(gt=0)]
    window: WindowText = "1M"
    # True: periods start at UTC boundaries (midnight, Monday, the 1st); False: rolling
    # periods of the window's length from the key's creation.
    calendar: bool = False


class RateLimitConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    requests: Annotated[int, Meta(ge=1)] | None = None
    tokens: Annotated[int, Meta(ge=1)] | None = None
    window: WindowText = "1m"
    calendar: bool = False


class KeySpecConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A virtual key without its secret: who may call, for what, and how much. Keys in
    the config file and keys created through the admin API (/api/keys) alike."""

    name: str
    # Providers it may use; None: every provider.
    providers: tuple[str, ...] | None = None
    # Models it may use, as "provider/model" patterns (fnmatch: "openai/gpt-4o*"); None: all.
    models: tuple[str, ...] | None = None
    # Models it may not use (same patterns), checked after the allow-lists.
    deny_models: tuple[str, ...] = ()
    budgets: tuple[BudgetConfig, ...] = ()
    rate_limits: tuple[RateLimitConfig, ...] = ()
    max_concurrency: Annotated[int, Meta(ge=1)] | None = None
    expires_at: datetime | None = None  # RFC 3339 with a zone
    active: bool = True


class VirtualKeyConfig(KeySpecConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A virtual key of the config file."""

    value: str  # the secret (sk-bf-...), or env.VAR_NAME


def key_problem(key: KeySpecConfig, *, providers: Collection[str]) -> tuple[str, str] | None:
    """What the field types cannot say is wrong with a key: (field, why), or None."""
    for p in key.providers or ():
        if p not in providers:
            return "providers", f"{p!r} is not a configured provider"
    for r in key.rate_limits:
        if r.requests is None and r.tokens is None:
            return "rate_limits", "each needs requests, tokens or both"
    if key.expires_at is not None and key.expires_at.tzinfo is None:
        return "expires_at", "give a time zone (e.g. 2027-01-01T00:00:00Z)"
    return None


class TokenConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A gateway token: grants the configured provider keys, without limits."""

    name: str
    value: str


class AuthConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # False: a request without credentials is served as the anonymous principal
    # (virtual keys, when sent, still apply). True: anything but a known credential is a 401.
    required: bool = False
    # Guards the admin API (/api/keys); None: the admin API answers 404. Keys created
    # through it are looked up in the store only while an admin token is configured.
    admin_token: str | None = None
    # How long a process trusts what it last read of a runtime key (found, unknown or
    # inactive): a key revoked on another process still works there for up to this long.
    key_cache_s: Annotated[float, Meta(ge=0, le=300)] = 5.0
    tokens: tuple[TokenConfig, ...] = ()
    virtual_keys: tuple[VirtualKeyConfig, ...] = ()
    # True: a request with ``x-bf-direct-key: true`` sends the client's own provider key
    # (Authorization: Bearer, x-api-key, api-key or x-goog-api-key) to the one provider it
    # asks for, instead of the configured keys; its gateway credential, if any, comes in
    # x-bf-vk. False: such a request is a 403.
    client_provider_keys: bool = False
    # A request that sets no max_tokens is admitted against a budget as if it would produce
    # this many completion tokens (priced at its model's output price), so a nearly spent
    # budget is not overrun by requests without a limit. The real cost replaces it at the end.
    completion_estimate_tokens: Annotated[int, Meta(ge=1, le=1_000_000)] = 4096


class StoreConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # None: in-process memory (one process). A redis:// or rediss:// URL: counters, budgets,
    # in-flight counts, jobs and runtime keys shared by every process using it.
    redis_url: str | None = None
    prefix: str = "gw:"
    # When the store cannot be reached: False refuses governed requests (503), True serves
    # them uncounted. Either way logged and counted (gateway_store_errors_total).
    fail_open: bool = False
    timeout_s: Seconds = 0.25


class JobsConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_pending: Annotated[int, Meta(ge=1)] = 1000
    result_ttl_s: Seconds = 3600.0


class LogsConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The request log store behind GET /api/logs: one SQLite row per answered request."""

    enabled: bool = False
    # The SQLite file (and its -wal and -shm); relative to the working directory. Every
    # worker process writes the same file.
    path: str = "gateway-logs.sqlite3"
    # Rows older than this are deleted (swept every minute).
    retention_days: Annotated[float, Meta(gt=0)] = 7.0
    # Past this size of the database the oldest rows are deleted (~300 bytes a row).
    max_mb: Annotated[float, Meta(gt=0)] = 1024.0
    # How often buffered rows go to the writer thread (sooner when 1000 are waiting).
    flush_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    # Rows waiting for a writer that fell behind; past it the oldest are dropped
    # (gateway_log_rows_dropped_total). ~0.5 KB a row.
    max_queued_rows: Annotated[int, Meta(ge=1000)] = 100_000


class GatewayConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    store: StoreConfig = StoreConfig()
    jobs: JobsConfig = JobsConfig()
    logs: LogsConfig = LogsConfig()
    providers: dict[str, ProviderConfig] = {}
    # Where a bare model ("gpt-4o", no "provider/") goes.
    default_provider: str | None = None
    # "fast": "openai/gpt-4o-mini"; resolved before routing.
    aliases: dict[str, str] = {}


def _resolve(value: str, *, where: str, env: Mapping[str, str], problems: Problems, secret: bool = False) -> str:
    if not value.startswith(ENV_PREFIX):
        if secret and value:
            problems.warnings.append(f"{where}: a secret written in the file; write env.VAR_NAME and set VAR_NAME")
        return value
    var = value[len(ENV_PREFIX) :]
    if var not in env:
        problems.missing.append(f"{where}: environment variable {var} is not set")
        return value
    return env[var]


def _resolve_provider(
    name: str, p: ProviderConfig, *, source: str, env: Mapping[str, str], problems: Problems
) -> ProviderConfig:
    where = f"{source}: providers.{name}"
    keys = tuple(
        msgspec.structs.replace(
            k, value=_resolve(k.value, where=f"{where}.keys[{i}].value", env=env, problems=problems, secret=True)
        )
        for i, k in enumerate(p.keys)
    )
    headers = {h: _resolve(v, where=f"{where}.headers.{h}", env=env, problems=problems) for h, v in p.headers.items()}
    resolved = _resolve(p.base_url, where=f"{where}.base_url", env=env, problems=problems)
    base_url = resolved.rstrip("/")
    if (
        p.dialect != "mock"
        and not base_url.startswith(("http://", "https://"))
        and not (p.base_url.startswith(ENV_PREFIX) and resolved == p.base_url)  # its variable is missing
    ):
        problems.error(f"{where}.base_url: expected an http:// or https:// URL, got {base_url!r}")
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        problems.error(f"{where}.keys: key names must be unique, got {names}")
    if p.ca_file is not None:
        _check_ca_file(p.ca_file, where=f"{where}.ca_file", problems=problems)
    proxy = (
        "none"
        if p.dialect == "mock"
        else _resolve_proxy(p.proxy, base_url, where=f"{where}.proxy", env=env, problems=problems)
    )
    return msgspec.structs.replace(p, keys=keys, headers=headers, base_url=base_url, proxy=proxy)


def _resolve_proxy(value: str, base_url: str, *, where: str, env: Mapping[str, str], problems: Problems) -> str:
    """The proxy URL the provider's upstream is reached through, or "none"."""
    if value == "none":
        return value
    if value == "env":
        url = proxy_for(base_url, environment_proxies(env))
        if url is None:
            return "none"
        where = f"{where} (from the environment's {urlsplit(base_url).scheme.upper()}_PROXY or ALL_PROXY)"
    else:
        url = _resolve(value, where=where, env=env, problems=problems)
        if url.startswith(ENV_PREFIX):  # its variable is missing (reported)
            return "none"
        if "@" in url and not value.startswith(ENV_PREFIX):
            problems.warnings.append(
                f"{where}: a proxy password written in the file; write env.VAR_NAME and set VAR_NAME"
            )
    try:
        Proxy(url)
    except ValueError as e:  # the message shows scheme://host:port, never credentials
        problems.error(f"{where}: {e}")
        return "none"
    return url


def _check_ca_file(path: str, *, where: str, problems: Problems) -> None:
    """Loaded here as the provider will load it: a config that passes cannot fail to
    start, or to reload, on its CA file."""
    import ssl  # only for configs that name a CA file

    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        problems.error(f"{where}: cannot load CA certificates from {path!r}: {e}")


def _check(cfg: GatewayConfig, *, source: str, env: Mapping[str, str], problems: Problems) -> GatewayConfig:
    """``cfg`` as served: secrets resolved, environment overrides applied; what is wrong
    with it goes into ``problems`` (every problem, not the first)."""
    for name in cfg.providers:
        # Names go into response headers: printable ASCII, no space, no '/'.
        if not name or "/" in name or " " in name or not (name.isascii() and name.isprintable()):
            problems.error(f"{source}: providers: invalid provider name {name!r} (printable ASCII, no '/' or space)")
    if not cfg.providers:
        problems.warnings.append(f"{source}: providers: none configured; every model request will be refused")
    providers = {
        n: _resolve_provider(n, p, source=source, env=env, problems=problems) for n, p in cfg.providers.items()
    }
    if cfg.default_provider is not None and cfg.default_provider not in providers:
        problems.error(f"{source}: default_provider: {cfg.default_provider!r} is not a configured provider")
    for alias, target in cfg.aliases.items():
        provider, sep, model = target.partition("/")
        if not sep or not model or provider not in providers:
            problems.error(
                f"{source}: aliases.{alias}: expected 'provider/model' with a configured provider, got {target!r}"
            )
    return msgspec.structs.replace(
        cfg,
        providers=providers,
        auth=_auth(cfg, source=source, env=env, problems=problems),
        store=_store(cfg, source=source, env=env, problems=problems),
        server=_server(cfg, env=env, problems=problems),
        logs=_logs(cfg, source=source, env=env, problems=problems),
    )


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env_flag(env: Mapping[str, str], var: str, default: bool, problems: Problems) -> bool:
    value = env.get(var)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    problems.error(f"environment variable {var}: expected true or false, got {value!r}")
    return default


def _auth(cfg: GatewayConfig, *, source: str, env: Mapping[str, str], problems: Problems) -> AuthConfig:
    a = cfg.auth
    where = f"{source}: auth"
    admin = env.get("GATEWAY_ADMIN_TOKEN") or (
        _resolve(a.admin_token, where=f"{where}.admin_token", env=env, problems=problems, secret=True)
        if a.admin_token
        else None
    )
    tokens = tuple(
        msgspec.structs.replace(
            t, value=_resolve(t.value, where=f"{where}.tokens[{i}].value", env=env, problems=problems, secret=True)
        )
        for i, t in enumerate(a.tokens)
    )
    vks = []
    for i, vk in enumerate(a.virtual_keys):
        at = f"{where}.virtual_keys[{i}]"
        vk = msgspec.structs.replace(
            vk, value=_resolve(vk.value, where=f"{at}.value", env=env, problems=problems, secret=True)
        )
        problem = key_problem(vk, providers=cfg.providers)
        if problem is not None:
            problems.error(f"{at}.{problem[0]}: {problem[1]}")
        vks.append(vk)
    secrets = [t.value for t in tokens] + [v.value for v in vks] + ([admin] if admin else [])
    # Those whose variable is missing are not known yet (reported as missing).
    known = [x for x in secrets if not x.startswith(ENV_PREFIX)]
    if any(len(x) < MIN_SECRET_CHARS for x in known):
        problems.error(f"{where}: tokens, virtual key values and admin_token need {MIN_SECRET_CHARS}+ characters")
    if len(set(known)) != len(known):
        problems.error(f"{where}: tokens, virtual key values and admin_token must all differ")
    names = [v.name for v in vks]
    if len(set(names)) != len(names):
        problems.error(f"{where}.virtual_keys: names must be unique, got {names}")
    required = _env_flag(env, "GATEWAY_AUTH_REQUIRED", a.required, problems)
    direct = _env_flag(env, "GATEWAY_CLIENT_PROVIDER_KEYS", a.client_provider_keys, problems)
    return msgspec.structs.replace(
        a, admin_token=admin, tokens=tokens, virtual_keys=tuple(vks), required=required, client_provider_keys=direct
    )


def _store(cfg: GatewayConfig, *, source: str, env: Mapping[str, str], problems: Problems) -> StoreConfig:
    s = cfg.store
    url = env.get("GATEWAY_REDIS_URL") or (
        _resolve(s.redis_url, where=f"{source}: store.redis_url", env=env, problems=problems) if s.redis_url else None
    )
    if (
        url is not None
        and not url.startswith(("redis://", "rediss://", "unix://"))
        and not (url == s.redis_url and url.startswith(ENV_PREFIX))  # its variable is missing
    ):
        problems.error(f"store.redis_url: expected redis://, rediss:// or unix://, got {url.split('@')[-1]!r}")
    fail_open = _env_flag(env, "GATEWAY_STORE_FAIL_OPEN", s.fail_open, problems)
    return msgspec.structs.replace(s, redis_url=url, fail_open=fail_open)


def _logs(cfg: GatewayConfig, *, source: str, env: Mapping[str, str], problems: Problems) -> LogsConfig:
    logs = cfg.logs
    path = env.get("GATEWAY_LOGS_PATH")
    if path:  # naming a file is enough to want it
        logs = msgspec.structs.replace(logs, enabled=True, path=path)
    if not logs.enabled:
        return logs
    where = "environment variable GATEWAY_LOGS_PATH" if path else f"{source}: logs.path"
    if logs.path in ("", ":memory:"):  # the writer and reader threads must open one database
        problems.error(f"{where}: expected a file path, got {logs.path!r}")
        return logs
    parent = Path(logs.path).parent
    if not parent.is_dir():
        problems.error(f"{where}: directory {str(parent)!r} does not exist")
    return logs


# Server settings the environment overrides (a container needs no file for them).
_SERVER_ENV = {
    "GATEWAY_HOST": "host",
    "GATEWAY_PORT": "port",
    "GATEWAY_WORKERS": "workers",
    "GATEWAY_SHUTDOWN_GRACE_S": "shutdown_grace_s",
    "GATEWAY_DRAIN_DELAY_S": "drain_delay_s",
}


def _server(cfg: GatewayConfig, *, env: Mapping[str, str], problems: Problems) -> ServerConfig:
    s = cfg.server
    for var, field in _SERVER_ENV.items():
        value = env.get(var)
        if not value:
            continue
        try:  # strict=False: "4" is the int 4; the field's own bounds apply
            s = msgspec.convert({**msgspec.structs.asdict(s), field: value}, type=ServerConfig, strict=False)
        except msgspec.ValidationError as e:
            problems.error(f"environment variable {var}: {e}")
    return s


# What a running process cannot take from a reloaded config: its listening socket, its
# processes, how its connections are read and bounded, its access log, its state store and
# its request log store.
RESTART_ONLY = (
    ("server", "host"),
    ("server", "port"),
    ("server", "workers"),
    ("server", "reuse_port"),
    ("server", "max_header_bytes"),
    ("server", "max_headers"),
    ("server", "header_timeout_s"),
    ("server", "body_timeout_s"),
    ("server", "body_min_bytes_per_s"),
    ("server", "keepalive_timeout_s"),
    ("server", "max_connections"),
    ("server", "access_log"),
    ("server", "access_log_content"),
    ("store", "redis_url"),
    ("store", "prefix"),
    ("store", "timeout_s"),
    *(("logs", field) for field in LogsConfig.__struct_fields__),
)


def reloadable(old: GatewayConfig, new: GatewayConfig) -> tuple[GatewayConfig, list[str]]:
    """``new`` as a running process serves it: the RESTART_ONLY settings kept as in
    ``old``; and the names of those that differ (to log as ignored until a restart)."""
    changed: list[str] = []
    sections: dict[str, dict[str, object]] = {}
    for section, field in RESTART_ONLY:
        running = getattr(getattr(old, section), field)
        if getattr(getattr(new, section), field) != running:
            changed.append(f"{section}.{field}")
            sections.setdefault(section, {})[field] = running
    for section, fields in sections.items():
        new = msgspec.structs.replace(new, **{section: msgspec.structs.replace(getattr(new, section), **fields)})
    return new, changed


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Decode a config file straight into Structs; every problem is a ConfigError."""
    return load_written(path, env=env)[1]


def load_written(path: str | Path, *, env: Mapping[str, str] | None = None) -> tuple[GatewayConfig, GatewayConfig]:
    """(as written, as served): the file decoded with its ``env.`` references still in
    place, and ``load``'s result. The first can be encoded back without a secret in it."""
    written, served, problems = check(path, env=env)
    problems.raise_if_any()
    assert written is not None and served is not None
    return written, served


_DECODERS: dict[str, Any] = {".json": msgspec.json, ".yaml": msgspec.yaml, ".yml": msgspec.yaml, ".toml": msgspec.toml}


def check(
    path: str | Path, *, env: Mapping[str, str] | None = None
) -> tuple[GatewayConfig | None, GatewayConfig | None, Problems]:
    """(as written, as served, what is wrong): every problem of the file at once, each
    named by its path (``providers.groq.base_url``). The configs are None when the file
    cannot be decoded into them."""
    p = Path(path)
    env = os.environ if env is None else env
    problems = Problems()
    try:
        raw = p.read_bytes()
    except OSError as e:
        problems.error(f"{p}: cannot read config file: {e.strerror}")
        return None, None, problems
    suffix = p.suffix.lower()
    codec = _DECODERS.get(suffix)
    if codec is None:
        problems.error(f"{p}: unknown config format {suffix!r}; use .json, .yaml, .yml or .toml")
        return None, None, problems
    try:
        cfg = codec.decode(raw, type=GatewayConfig)
    except msgspec.ValidationError:
        # Decoded again untyped, every field on its own: all the problems, by name.
        for problem in _structure(codec.decode(raw), GatewayConfig, ""):
            problems.error(f"{p}: {problem}")
        return None, None, problems
    except msgspec.DecodeError as e:
        problems.error(f"{p}: not valid {suffix[1:].upper()}: {e}")
        return None, None, problems
    return cfg, _check(cfg, source=str(p), env=env, problems=problems), problems


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _structure(value: Any, typ: Any, path: str) -> list[str]:
    """Why ``value`` does not decode into ``typ``: one message per bad field, each named
    by its path, descending through structs, mappings and lists (msgspec stops at the
    first)."""
    if isinstance(typ, type) and issubclass(typ, Struct) and isinstance(value, dict):
        fields = {f.encode_name: f for f in msgspec.structs.fields(typ)}
        found = [f"{_join(path, str(k))}: unknown key" for k in value if k not in fields]
        found += [f"{_join(path, n)}: required, missing" for n, f in fields.items() if f.required and n not in value]
        for k, v in value.items():
            if k in fields:
                found += _structure(v, fields[k].type, _join(path, k))
        return found
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return [m for k, v in value.items() for m in _structure(v, args[1], _join(path, k))]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and isinstance(value, list):
        return [m for i, v in enumerate(value) for m in _structure(v, args[0], f"{path}[{i}]")]
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError as e:
        text = str(e)
        at = _AT.search(text)
        if at:
            text, path = text[: at.start()], path + at.group("path").replace("[...]", "[]")
        return [f"{path or '(top)'}: {text}"]
    return []


def from_env(env: Mapping[str, str] | None = None) -> GatewayConfig:
    """The embedded default: the mock provider, plus ``openai`` when the variables the
    OpenAI SDK itself reads are set (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``)."""
    env = os.environ if env is None else env
    providers: dict[str, ProviderConfig] = {"mock": ProviderConfig(dialect="mock")}
    # The mock answers only models that name it (mock/...): a bare or mistyped model is a
    # 404, never a canned answer priced as a real one.
    default: str | None = None
    # Each SDK's own variables. The default provider: openai if set, else anthropic, else gemini.
    # Priced as the SDK's own provider (genai-prices id) whatever the base URL: a proxy or a
    # corporate gateway in front of OpenAI is the common custom URL. A model that provider
    # does not list (a vLLM's meta-llama/...) stays unpriced.
    for name, prefix, base_default, pricing_id in (
        ("gemini", "GEMINI", GEMINI_DEFAULT_BASE_URL, "google"),
        ("anthropic", "ANTHROPIC", ANTHROPIC_DEFAULT_BASE_URL, "anthropic"),
        ("openai", "OPENAI", OPENAI_DEFAULT_BASE_URL, "openai"),
    ):
        if env.get(f"{prefix}_API_KEY") or env.get(f"{prefix}_BASE_URL"):
            keys = (KeyConfig(value=f"env.{prefix}_API_KEY"),) if env.get(f"{prefix}_API_KEY") else ()
            base = env.get(f"{prefix}_BASE_URL") or base_default
            providers[name] = ProviderConfig(
                dialect=name,  # type: ignore[arg-type]
                base_url=base,
                keys=keys,
                pricing_provider=pricing_id,
            )
            default = name
    problems = Problems()
    cfg = _check(
        GatewayConfig(providers=providers, default_provider=default), source="environment", env=env, problems=problems
    )
    problems.raise_if_any()
    return cfg
