"""Loading a configuration: a file decoded straight into the Structs (``schema``), every
problem found at once and named by its path, ``env.VAR_NAME`` secrets and the
``GATEWAY_*`` overrides resolved here, the only module that reads the environment; and
the embedded default built from the SDKs' own variables."""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Struct

from gateway.config.proxy import Proxy, environment_proxies, proxy_for
from gateway.config.schema import (
    ANTHROPIC_DEFAULT_BASE_URL,
    ENV_PREFIX,
    GEMINI_DEFAULT_BASE_URL,
    MIN_SECRET_CHARS,
    OPENAI_DEFAULT_BASE_URL,
    AuthConfig,
    ConfigError,
    GatewayConfig,
    KeyConfig,
    LogsConfig,
    ProviderConfig,
    ServerConfig,
    StoreConfig,
    key_problem,
)


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


# The pool's cap and wait as a provider has them by default.
_POOL_DEFAULTS = (ProviderConfig().max_connections, ProviderConfig().pool_timeout_s)


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
    if p.responses in ("native", "auto") and p.dialect != "openai":
        problems.error(
            f"{where}.responses: {p.responses!r} needs dialect 'openai' (the Responses API is OpenAI's), "
            f"got dialect {p.dialect!r}; use 'translate'"
        )
    if p.client == "aiohttp" and p.dialect != "mock" and (p.max_connections, p.pool_timeout_s) != _POOL_DEFAULTS:
        problems.warnings.append(
            f"{where}: max_connections and pool_timeout_s apply to client 'pool' only; "
            f"client 'aiohttp' keeps up to {_POOL_DEFAULTS[0]} connections per host, shared by its providers"
        )
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
    _check_cache(cfg, source=source, problems=problems)
    return msgspec.structs.replace(
        cfg,
        providers=providers,
        auth=_auth(cfg, source=source, env=env, problems=problems),
        store=_store(cfg, source=source, env=env, problems=problems),
        server=_server(cfg, env=env, problems=problems),
        logs=_logs(cfg, source=source, env=env, problems=problems),
    )


def _check_cache(cfg: GatewayConfig, *, source: str, problems: Problems) -> None:
    """What the cache section's types cannot say: its overrides name configured providers."""
    c = cfg.cache
    for name in c.providers:
        if name not in cfg.providers:
            problems.error(f"{source}: cache.providers.{name}: not a configured provider")
    for name in c.models:
        provider, sep, model = name.partition("/")
        if not sep or not model or provider not in cfg.providers:
            problems.error(f"{source}: cache.models.{name}: expected 'provider/model' with a configured provider")
    if c.embedding_model is not None:
        provider, sep, model = c.embedding_model.partition("/")
        if not sep or not model or provider not in cfg.providers:
            problems.error(
                f"{source}: cache.embedding_model: expected 'provider/model' with a configured provider, "
                f"got {c.embedding_model!r}"
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
    ("responses", "max_memory_bytes"),
    ("cache", "store"),
    ("cache", "max_bytes"),
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
