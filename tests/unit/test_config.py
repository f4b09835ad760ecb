"""gateway.config: file loading (JSON, YAML, TOML), validation and the env default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.config import (
    OPENAI_DEFAULT_BASE_URL,
    ConfigError,
    GatewayConfig,
    ServerConfig,
    from_env,
    load,
    reloadable,
)
from gateway.routing.providers import responses_mode


def write_json(tmp_path: Path, data: object, name: str = "gateway.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_load_json_reads_providers_server_and_aliases(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "server": {"host": "0.0.0.0", "port": 9999},
            "default_provider": "up",
            "aliases": {"fast": "up/gpt-fast"},
            "providers": {
                "up": {
                    "dialect": "openai",
                    "base_url": "http://127.0.0.1:1234/v1",
                    "keys": [{"value": "sk-literal", "name": "main", "weight": 2}],
                    "headers": {"X-Team": "infra"},
                    "models": ["gpt-fast"],
                    "timeouts": {"request_s": 12.5},
                },
                "mock": {"dialect": "mock", "mock": {"tokens": 3}},
            },
        },
    )
    cfg = load(path, env={})
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.port == 9999
    assert cfg.default_provider == "up"
    assert cfg.aliases == {"fast": "up/gpt-fast"}
    up = cfg.providers["up"]
    assert up.dialect == "openai"
    assert up.base_url == "http://127.0.0.1:1234/v1"
    assert [(k.name, k.value, k.weight) for k in up.keys] == [("main", "sk-literal", 2.0)]
    assert up.headers == {"X-Team": "infra"}
    assert up.models == ("gpt-fast",)
    assert up.timeouts.request_s == 12.5
    assert up.timeouts.connect_s == 10.0  # default kept
    assert cfg.providers["mock"].dialect == "mock"
    assert cfg.providers["mock"].mock.tokens == 3


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "default_provider: local\n"
        "providers:\n"
        "  local:\n"
        "    base_url: http://localhost:8000/v1\n"
        "    keys:\n"
        "      - value: env.LOCAL_KEY\n"
        "server:\n"
        "  port: 8181\n"
    )
    cfg = load(path, env={"LOCAL_KEY": "sk-from-env"})
    assert cfg.default_provider == "local"
    assert cfg.server.port == 8181
    assert cfg.providers["local"].base_url == "http://localhost:8000/v1"
    assert cfg.providers["local"].keys[0].value == "sk-from-env"


def test_load_yml_suffix_is_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yml"
    path.write_text("providers:\n  m:\n    dialect: mock\n")
    cfg = load(path, env={})
    assert cfg.providers["m"].dialect == "mock"


def test_load_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        'default_provider = "up"\n'
        "\n"
        "[aliases]\n"
        'fast = "up/small"\n'
        "\n"
        "[providers.up]\n"
        'base_url = "https://example.test/v1"\n'
        'models = ["small", "big"]\n'
        "\n"
        "[[providers.up.keys]]\n"
        'value = "env.UP_KEY"\n'
        'name = "a"\n'
        "\n"
        "[[providers.up.keys]]\n"
        'value = "sk-b"\n'
        'name = "b"\n'
    )
    cfg = load(path, env={"UP_KEY": "sk-a"})
    up = cfg.providers["up"]
    assert cfg.default_provider == "up"
    assert cfg.aliases == {"fast": "up/small"}
    assert up.base_url == "https://example.test/v1"
    assert up.models == ("small", "big")
    assert [(k.name, k.value) for k in up.keys] == [("a", "sk-a"), ("b", "sk-b")]


def test_load_unknown_top_level_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {}, "bogus_option": 1})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "bogus_option" in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_unknown_nested_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"p": {"base_url": "http://x", "api_key": "sk-oops"}}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "api_key" in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_unknown_key_in_yaml_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("server:\n  hostname: 0.0.0.0\n")
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "hostname" in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_env_reference_resolved_in_keys_headers_and_base_url(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "providers": {
                "p": {
                    "base_url": "env.P_BASE",
                    "keys": [{"value": "env.P_KEY"}],
                    "headers": {"X-Org": "env.P_ORG", "X-Plain": "literal"},
                }
            }
        },
    )
    cfg = load(path, env={"P_BASE": "https://p.test/v1/", "P_KEY": "sk-secret", "P_ORG": "org-1"})
    p = cfg.providers["p"]
    assert p.base_url == "https://p.test/v1"
    assert p.keys[0].value == "sk-secret"
    assert p.headers == {"X-Org": "org-1", "X-Plain": "literal"}


def test_load_env_reference_uses_given_mapping_not_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_ONLY_IN_OS", "sk-os")
    path = write_json(
        tmp_path, {"providers": {"p": {"base_url": "http://x", "keys": [{"value": "env.GW_TEST_ONLY_IN_OS"}]}}}
    )
    with pytest.raises(ConfigError, match="GW_TEST_ONLY_IN_OS"):
        load(path, env={})


def test_load_missing_env_variable_names_variable(tmp_path: Path) -> None:
    path = write_json(
        tmp_path, {"providers": {"p": {"base_url": "http://x", "keys": [{"value": "env.MISSING_KEY_VAR"}]}}}
    )
    with pytest.raises(ConfigError) as exc:
        load(path, env={"OTHER": "x"})
    message = str(exc.value)
    assert "MISSING_KEY_VAR" in message
    assert str(path) in message
    assert "providers.p.keys[0].value" in message


def test_load_missing_env_variable_in_header_names_variable(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"p": {"dialect": "mock", "headers": {"X-Key": "env.HDR_VAR"}}}})
    with pytest.raises(ConfigError, match="HDR_VAR"):
        load(path, env={})


@pytest.mark.parametrize("base_url", ["", "ftp://example.test/v1", "example.test/v1", "localhost:8000"])
def test_load_bad_base_url_rejected(tmp_path: Path, base_url: str) -> None:
    path = write_json(tmp_path, {"providers": {"p": {"dialect": "openai", "base_url": base_url}}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "providers.p.base_url" in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_mock_provider_needs_no_base_url(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"m": {"dialect": "mock"}}})
    assert load(path, env={}).providers["m"].base_url == ""


def test_load_base_url_trailing_slash_stripped(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"p": {"base_url": "https://p.test/v1/"}}})
    assert load(path, env={}).providers["p"].base_url == "https://p.test/v1"


def test_load_default_provider_not_configured(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"default_provider": "nope", "providers": {"m": {"dialect": "mock"}}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "default_provider" in str(exc.value)
    assert "nope" in str(exc.value)


def test_load_alias_to_unknown_provider(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"m": {"dialect": "mock"}}, "aliases": {"fast": "other/model"}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "aliases.fast" in str(exc.value)
    assert "other/model" in str(exc.value)


@pytest.mark.parametrize("target", ["m", "m/", "/model"])
def test_load_alias_without_provider_slash_model_rejected(tmp_path: Path, target: str) -> None:
    path = write_json(tmp_path, {"providers": {"m": {"dialect": "mock"}}, "aliases": {"fast": target}})
    with pytest.raises(ConfigError, match=r"aliases\.fast"):
        load(path, env={})


def test_load_alias_to_configured_provider_accepted(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"m": {"dialect": "mock"}}, "aliases": {"fast": "m/mock-chat"}})
    assert load(path, env={}).aliases == {"fast": "m/mock-chat"}


def test_load_duplicate_key_names_rejected(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {"providers": {"p": {"base_url": "http://x", "keys": [{"value": "sk-1"}, {"value": "sk-2"}]}}},
    )
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "providers.p.keys" in str(exc.value)
    assert "unique" in str(exc.value)


def test_load_distinct_key_names_accepted(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "providers": {
                "p": {"base_url": "http://x", "keys": [{"value": "sk-1", "name": "a"}, {"value": "sk-2", "name": "b"}]}
            }
        },
    )
    assert [k.name for k in load(path, env={}).providers["p"].keys] == ["a", "b"]


def test_load_provider_name_with_slash_rejected(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"providers": {"a/b": {"dialect": "mock"}}})
    with pytest.raises(ConfigError, match="a/b"):
        load(path, env={})


def test_load_value_out_of_range_is_config_error(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"server": {"port": 70000}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert "port" in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_invalid_syntax_is_config_error(tmp_path: Path) -> None:
    for name, text in [("bad.json", "{"), ("bad.yaml", "a: ["), ("bad.toml", "x = [")]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as exc:
            load(path, env={})
        assert str(path) in str(exc.value)
        assert "not valid" in str(exc.value)


def test_load_unknown_suffix_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gateway.ini"
    path.write_text("[server]\n")
    with pytest.raises(ConfigError, match=r"\.ini"):
        load(path, env={})


def test_load_missing_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError) as exc:
        load(path, env={})
    assert str(path) in str(exc.value)


def test_from_env_empty_gives_only_mock() -> None:
    cfg = from_env({})
    assert list(cfg.providers) == ["mock"]
    assert cfg.providers["mock"].dialect == "mock"
    assert cfg.default_provider is None  # the mock answers mock/... only


def test_from_env_empty_values_ignored() -> None:
    cfg = from_env({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert list(cfg.providers) == ["mock"]
    assert cfg.default_provider is None


def test_from_env_api_key_adds_openai() -> None:
    cfg = from_env({"OPENAI_API_KEY": "sk-test-123"})
    assert set(cfg.providers) == {"mock", "openai"}
    openai = cfg.providers["openai"]
    assert openai.dialect == "openai"
    assert openai.base_url == "https://api.openai.com/v1"
    assert OPENAI_DEFAULT_BASE_URL == "https://api.openai.com/v1"
    assert [k.value for k in openai.keys] == ["sk-test-123"]
    assert cfg.default_provider == "openai"


def test_from_env_base_url_only_has_no_keys() -> None:
    cfg = from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    openai = cfg.providers["openai"]
    assert openai.base_url == "http://127.0.0.1:8000/v1"
    assert openai.keys == ()
    assert cfg.default_provider == "openai"


def test_from_env_key_and_base_url() -> None:
    cfg = from_env({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "https://proxy.test/v1"})
    openai = cfg.providers["openai"]
    assert openai.base_url == "https://proxy.test/v1"
    assert [k.value for k in openai.keys] == ["sk-x"]


def test_from_env_base_url_trailing_slash_stripped() -> None:
    cfg = from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"})
    assert cfg.providers["openai"].base_url == "http://127.0.0.1:8000/v1"


def test_from_env_bad_base_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        from_env({"OPENAI_BASE_URL": "localhost:8000/v1"})


VK = {"name": "a", "value": "sk-bf-a-0123456789abcdef"}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ({"providers": ["nope"]}, "virtual_keys[0].providers: 'nope' is not a configured provider"),
        ({"rate_limits": [{"window": "1m"}]}, "virtual_keys[0].rate_limits: each needs requests, tokens or both"),
        ({"expires_at": "2030-01-01T00:00:00"}, "virtual_keys[0].expires_at: give a time zone"),
    ],
)
def test_load_virtual_key_problem_names_the_field(tmp_path: Path, key: dict[str, object], problem: str) -> None:
    path = write_json(tmp_path, {"providers": {"mock": {"dialect": "mock"}}, "auth": {"virtual_keys": [{**VK, **key}]}})
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load(path, env={})


def test_load_admin_token_from_env_and_key_cache_bounds(tmp_path: Path) -> None:
    cfg = load(write_json(tmp_path, {"auth": {"key_cache_s": 0}}), env={"GATEWAY_ADMIN_TOKEN": "adm-0123456789abcdef"})
    assert cfg.auth.admin_token == "adm-0123456789abcdef" and cfg.auth.key_cache_s == 0
    assert load(write_json(tmp_path, {}), env={}).auth.key_cache_s == 5.0
    for bad in (-1, 301):
        with pytest.raises(ConfigError, match="key_cache_s"):
            load(write_json(tmp_path, {"auth": {"key_cache_s": bad}}), env={})
    with pytest.raises(ConfigError, match="16"):
        load(write_json(tmp_path, {}), env={"GATEWAY_ADMIN_TOKEN": "short"})


def test_load_client_provider_keys_from_file_and_env(tmp_path: Path) -> None:
    assert load(write_json(tmp_path, {}), env={}).auth.client_provider_keys is False
    on = write_json(tmp_path, {"auth": {"client_provider_keys": True}})
    assert load(on, env={}).auth.client_provider_keys is True
    assert load(on, env={"GATEWAY_CLIENT_PROVIDER_KEYS": "false"}).auth.client_provider_keys is False
    assert from_env({"GATEWAY_CLIENT_PROVIDER_KEYS": "true"}).auth.client_provider_keys is True
    with pytest.raises(ConfigError, match="GATEWAY_CLIENT_PROVIDER_KEYS"):
        load(on, env={"GATEWAY_CLIENT_PROVIDER_KEYS": "maybe"})


def test_load_logs_off_by_default_and_from_file_and_env(tmp_path: Path) -> None:
    default = load(write_json(tmp_path, {}), env={}).logs
    assert default.enabled is False and default.path == "gateway-logs.sqlite3"
    assert (default.retention_days, default.max_mb) == (7.0, 1024.0)
    on = write_json(tmp_path, {"logs": {"enabled": True, "path": str(tmp_path / "l.db"), "retention_days": 0.5}})
    assert load(on, env={}).logs.retention_days == 0.5
    # Naming a file in the environment turns the store on.
    logs = from_env({"GATEWAY_LOGS_PATH": str(tmp_path / "env.db")}).logs
    assert logs.enabled is True and logs.path == str(tmp_path / "env.db")


@pytest.mark.parametrize(
    ("logs", "env", "problem"),
    [
        ({"max_mb": 0}, {}, "logs.max_mb"),
        ({"retention_days": -1}, {}, "logs.retention_days"),
        ({"flush_s": 120}, {}, "logs.flush_s"),
        ({"max_queued_rows": 10}, {}, "logs.max_queued_rows"),
        ({"enabled": True, "path": "/no/such/dir/l.db"}, {}, "logs.path"),
        ({"enabled": True, "path": ":memory:"}, {}, "logs.path"),
        ({"retention": 3}, {}, "retention"),
        ({}, {"GATEWAY_LOGS_PATH": "/no/such/dir/l.db"}, "GATEWAY_LOGS_PATH"),
    ],
)
def test_load_logs_problem_names_the_field(
    tmp_path: Path, logs: dict[str, object], env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load(write_json(tmp_path, {"logs": logs}), env=env)


def test_load_client_connection_bounds_defaults_and_overrides(tmp_path: Path) -> None:
    s = load(write_json(tmp_path, {}), env={}).server
    assert (s.header_timeout_s, s.body_timeout_s, s.body_min_bytes_per_s) == (10.0, 120.0, 1024)
    assert (s.keepalive_timeout_s, s.max_connections) == (75.0, None)
    path = write_json(
        tmp_path,
        {
            "server": {
                "header_timeout_s": 2.5,
                "body_timeout_s": 30,
                "body_min_bytes_per_s": 0,
                "keepalive_timeout_s": 5,
                "max_connections": 100,
            }
        },
    )
    s = load(path, env={}).server
    assert (s.header_timeout_s, s.body_timeout_s, s.body_min_bytes_per_s) == (2.5, 30.0, 0)
    assert (s.keepalive_timeout_s, s.max_connections) == (5.0, 100)
    for bad in ({"header_timeout_s": 0}, {"max_connections": 0}, {"body_min_bytes_per_s": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load(write_json(tmp_path, {"server": bad}), env={})


def test_reloadable_keeps_client_connection_bounds() -> None:
    old = GatewayConfig()
    new = GatewayConfig(server=ServerConfig(header_timeout_s=1.0, max_connections=10, max_body_bytes=4096))
    served, ignored = reloadable(old, new)
    assert served.server.header_timeout_s == 10.0 and served.server.max_connections is None
    assert served.server.max_body_bytes == 4096  # reloadable, taken
    assert set(ignored) == {"server.header_timeout_s", "server.max_connections"}


def test_load_provider_pool_cap_defaults_bounds_and_aiohttp_warning(tmp_path: Path) -> None:
    from gateway.config import check
    from gateway.upstream.client import MAX_CONNECTIONS_PER_HOST
    from gateway.upstream.origin import DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT_S

    def provider(**fields: object) -> dict[str, object]:
        return {"providers": {"p": {"base_url": "http://127.0.0.1:9/v1", **fields}}}

    p = load(write_json(tmp_path, provider()), env={}).providers["p"]
    # An origin no config limited, the aiohttp client and a provider's default agree.
    assert (p.max_connections, p.pool_timeout_s) == (DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT_S) == (1000, 5.0)
    assert MAX_CONNECTIONS_PER_HOST == DEFAULT_MAX_CONNECTIONS
    p = load(write_json(tmp_path, provider(max_connections=8, pool_timeout_s=0.5)), env={}).providers["p"]
    assert (p.max_connections, p.pool_timeout_s) == (8, 0.5)
    for bad in ({"max_connections": 0}, {"pool_timeout_s": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load(write_json(tmp_path, provider(**bad)), env={})
    # The aiohttp client has its own per-host cap: a provider's is not applied there.
    _, _, problems = check(write_json(tmp_path, provider(client="aiohttp", max_connections=8)), env={})
    assert [w for w in problems.warnings if "max_connections" in w] == [
        f"{tmp_path / 'gateway.json'}: providers.p: max_connections and pool_timeout_s apply to client 'pool' only; "
        "client 'aiohttp' keeps up to 1000 connections per host, shared by its providers"
    ]
    _, _, problems = check(write_json(tmp_path, provider(max_connections=8)), env={})
    assert not [w for w in problems.warnings if "max_connections" in w]


def test_load_responses_auto_by_default_for_the_openai_dialect_and_native_needs_openai(tmp_path: Path) -> None:
    providers = {
        "p": {"base_url": "http://x"},
        "q": {"base_url": "http://x", "responses": "native"},
        "openai": {"base_url": "https://api.openai.com/v1"},
        "pinned": {"base_url": "https://api.openai.com/v1", "responses": "translate"},
        "claude": {"dialect": "anthropic", "base_url": "http://x"},
        "m": {"dialect": "mock"},
    }
    cfg = load(write_json(tmp_path, {"providers": providers}), env={})
    modes = {name: responses_mode(p) for name, p in cfg.providers.items()}
    assert modes == {
        "p": "auto",
        "q": "native",
        "openai": "auto",
        "pinned": "translate",
        "claude": "translate",
        "m": "translate",
    }
    for mode in ("native", "auto"):
        bad = write_json(
            tmp_path, {"providers": {"a": {"dialect": "anthropic", "base_url": "http://x", "responses": mode}}}
        )
        with pytest.raises(ConfigError, match=rf"providers\.a\.responses: '{mode}' needs dialect 'openai'"):
            load(bad, env={})


def test_load_cache_section_checks_its_names(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "providers": {"up": {"base_url": "http://127.0.0.1:1/v1"}},
            "cache": {
                "enabled": True,
                "providers": {"nope": {"ttl_s": 5}},
                "models": {"gpt-x": {"enabled": False}},
                "embedding_model": "missing/text-embedding",
            },
        },
    )
    with pytest.raises(ConfigError) as e:
        load(path, env={})
    text = str(e.value)
    assert "cache.providers.nope" in text and "cache.models.gpt-x" in text and "cache.embedding_model" in text


def test_load_cache_section_bounds_its_values(tmp_path: Path) -> None:
    for bad in ({"threshold": 1.5}, {"ttl_s": 0}, {"stream_replay": "slow"}, {"semantic_input": "all"}):
        with pytest.raises(ConfigError, match="cache"):
            load(write_json(tmp_path, {"cache": bad}), env={})
    cfg = load(write_json(tmp_path, {"cache": {"enabled": True, "ttl_s": 30, "stream_replay": "paced"}}), env={})
    assert cfg.cache.enabled and cfg.cache.ttl_s == 30 and cfg.cache.stream_replay == "paced"
    assert not GatewayConfig().cache.enabled  # off by default
