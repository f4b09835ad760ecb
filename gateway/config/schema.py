"""The configuration's shape: frozen msgspec Structs with their bounds and defaults (a
typo in a config file is an error, not a silent default), and what a key spec may not be."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

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
    # (gateway/upstream/pool.py; 0.6-0.7x the CPU of an aiohttp forwarder per request), or
    # "aiohttp", ClientSession, for what the pool does not do (compressed bodies).
    client: Literal["aiohttp", "pool"] = "pool"
    # Connections the pool keeps open to this provider's origin (scheme://host:port), in
    # use, idle and being opened. At the cap a request waits for one to be released or
    # closed, first come first served, for pool_timeout_s at most (and never past its own
    # timeout), then fails with a 503 (upstream_pool_exhausted) and the next fallback is
    # tried. Providers sharing an origin share its connections: the largest cap and the
    # longest wait among them apply. The default is the aiohttp client's per-host cap,
    # which client "aiohttp" keeps whatever this says.
    max_connections: Annotated[int, Meta(ge=1)] = 1000
    pool_timeout_s: Seconds = 5.0
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
    # The Responses API (POST /v1/responses) to this provider: "translate" into a chat
    # request (the gateway keeps the responses), "native": relayed as the client's bytes
    # to its own /responses (the upstream keeps them), or "auto": native until the server
    # answers that it has no such route (404, 405, 501), then translated. "native" and
    # "auto": openai dialect only. Unset: "auto" for the openai dialect, else "translate".
    responses: Literal["native", "translate", "auto"] | None = None


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


class ResponsesConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Responses the gateway keeps for the Responses API (``previous_response_id``,
    ``GET`` / ``DELETE /v1/responses/{id}``, ``.../input_items``), in the state store."""

    # How long a response can be read or continued after it was answered: 30 days, as
    # OpenAI keeps its own.
    store_ttl_s: Seconds = 30 * 86400.0
    # One response's record (its input items, the Response object with its output) past
    # this is not kept (a WARNING line; the client still gets its answer, and continuing
    # it is a 400 previous_response_not_found). 4 MiB is a long turn with images inline.
    max_record_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    # A conversation rebuilt from previous_response_id, every record of its chain
    # together, past this is a 400: it bounds what one request pins in memory, at twice
    # the largest body a client may send by default.
    max_conversation_bytes: Annotated[int, Meta(ge=1024)] = 32 * 1024 * 1024
    # Without Redis: what kept responses may take of the process's memory (with workers,
    # the supervisor's); past it the least recently used are forgotten. Restart to change.
    max_memory_bytes: Annotated[int, Meta(ge=1024 * 1024)] = 256 * 1024 * 1024


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


class CacheRuleConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The cache settings one provider or one model overrides; unset: the section's."""

    enabled: bool | None = None
    ttl_s: Seconds | None = None
    every_request: bool | None = None
    threshold: Share | None = None


class CacheConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The response cache (docs/cache.md): answers of chat and text completions kept by a
    hash of the canonical request and given again without an upstream call."""

    # Off by default; a provider or model override may turn it on for that target alone.
    enabled: bool = False
    # How long an answer is kept; a request may ask for another (x-bf-cache-ttl).
    ttl_s: Seconds = 300.0
    # True: every request takes part; False: only those that send x-bf-cache-key.
    every_request: bool = False
    # "auto": the state store's Redis when store.redis_url is set (shared by every process
    # and replica), else in this process's memory. "memory": always in process.
    store: Literal["auto", "memory"] = "auto"
    # In process: what the kept answers may take of memory; past it the least recently
    # used are forgotten. Restart to change.
    max_bytes: Annotated[int, Meta(ge=1024 * 1024)] = 256 * 1024 * 1024
    # One answer past this is not kept (a stream's frames counted together).
    max_entry_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    # A stored stream replayed "at_once" (every frame as fast as the client reads) or
    # "paced" (at the gaps the original frames came with).
    stream_replay: Literal["at_once", "paced"] = "at_once"
    # True: answers cut by the token cap (finish_reason "length") are kept too.
    cache_length_finish: bool = False
    # True: the namespace is the x-bf-cache-key alone, shared by every caller. False: each
    # caller (virtual key, gateway token, or the credential sent) has its own.
    shared: bool = False
    # Semantic lookup (relay.semantic), on when embedding_model is set: after a direct
    # miss, the nearest kept request by embedding answers when at least this similar.
    threshold: Share = 0.8
    embedding_model: str | None = None  # "provider/model" serving embeddings
    # How long a request waits for its embedding before it goes upstream as a miss.
    embedding_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 2.0
    semantic_input: Literal["last_user", "conversation"] = "last_user"
    providers: dict[str, CacheRuleConfig] = {}
    # Keyed by "provider/model", the model as the provider names it (after aliases).
    models: dict[str, CacheRuleConfig] = {}


class GatewayConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    store: StoreConfig = StoreConfig()
    jobs: JobsConfig = JobsConfig()
    responses: ResponsesConfig = ResponsesConfig()
    logs: LogsConfig = LogsConfig()
    cache: CacheConfig = CacheConfig()
    providers: dict[str, ProviderConfig] = {}
    # Where a bare model ("gpt-4o", no "provider/") goes.
    default_provider: str | None = None
    # "fast": "openai/gpt-4o-mini"; resolved before routing.
    aliases: dict[str, str] = {}
