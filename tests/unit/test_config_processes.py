"""gateway.config, the settings of processes: workers, the shutdown's grace and drain
delay (file and environment), what a reload may change, and the config as written."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from gateway.config import ConfigError, GatewayConfig, from_env, load, load_written, reloadable


def write_json(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(data))
    return path


def test_config_processes_defaults_file_and_environment(tmp_path: Path) -> None:
    s = from_env({}).server
    assert (s.workers, s.shutdown_grace_s, s.drain_delay_s) == (None, 10.0, 0.0)
    path = write_json(tmp_path, {"server": {"workers": 3, "shutdown_grace_s": 30, "drain_delay_s": 5}})
    s = load(path, env={}).server
    assert (s.workers, s.shutdown_grace_s, s.drain_delay_s) == (3, 30.0, 5.0)
    env = {"GATEWAY_WORKERS": "1", "GATEWAY_SHUTDOWN_GRACE_S": "2.5", "GATEWAY_DRAIN_DELAY_S": "0"}
    s = load(path, env=env).server
    assert (s.workers, s.shutdown_grace_s, s.drain_delay_s) == (1, 2.5, 0.0)
    assert from_env({"GATEWAY_WORKERS": ""}).server.workers is None  # empty: unset


@pytest.mark.parametrize(
    ("server", "env", "named"),
    [
        ({"workers": 0}, {}, "workers"),
        ({"shutdown_grace_s": -1}, {}, "shutdown_grace_s"),
        ({"drain_delay_s": 601}, {}, "drain_delay_s"),
        ({}, {"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS"),
        ({}, {"GATEWAY_WORKERS": "two"}, "GATEWAY_WORKERS"),
        ({}, {"GATEWAY_SHUTDOWN_GRACE_S": "soon"}, "GATEWAY_SHUTDOWN_GRACE_S"),
    ],
)
def test_config_processes_bad_values_name_the_setting(
    tmp_path: Path, server: dict[str, object], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load(write_json(tmp_path, {"server": server}), env=env)


def test_config_reloadable_keeps_what_needs_a_restart(tmp_path: Path) -> None:
    old = load(write_json(tmp_path, {"server": {"port": 8080}}), env={})
    new = load(
        write_json(
            tmp_path,
            {
                "server": {"port": 9090, "workers": 4, "max_body_bytes": 4096, "shutdown_grace_s": 1},
                "store": {"prefix": "x:", "fail_open": True},
                "aliases": {"fast": "mock/m"},
                "providers": {"mock": {"dialect": "mock"}},
            },
        ),
        env={},
    )
    served, ignored = reloadable(old, new)
    assert ignored == ["server.port", "server.workers", "store.prefix"]
    assert (served.server.port, served.server.workers, served.store.prefix) == (8080, None, "gw:")
    # Everything else is the new config's.
    assert (served.server.max_body_bytes, served.server.shutdown_grace_s, served.store.fail_open) == (4096, 1.0, True)
    assert served.aliases == {"fast": "mock/m"}
    assert reloadable(old, old) == (old, [])


def test_config_as_written_keeps_env_references_and_round_trips(tmp_path: Path) -> None:
    """What the supervisor hands its workers: no secret in it, and decoded back as it was."""
    path = write_json(
        tmp_path,
        {
            "providers": {"up": {"base_url": "http://127.0.0.1:1/v1", "keys": [{"value": "env.UP_KEY"}]}},
            "auth": {"virtual_keys": [{"name": "a", "value": "env.VK_A", "expires_at": "2030-01-01T00:00:00Z"}]},
        },
    )
    written, served = load_written(path, env={"UP_KEY": "sk-secret-0123456789", "VK_A": "sk-bf-0123456789abcdef"})
    assert served.providers["up"].keys[0].value == "sk-secret-0123456789"
    data = msgspec.json.encode(written)
    assert b"sk-secret" not in data and b"sk-bf-" not in data and b"env.UP_KEY" in data
    assert msgspec.json.decode(data, type=GatewayConfig) == written


def test_config_ca_file_that_cannot_load_is_an_error(tmp_path: Path) -> None:
    for content in (None, "not a certificate"):
        ca = tmp_path / "ca.pem"
        if content is None:
            ca.unlink(missing_ok=True)
        else:
            ca.write_text(content)
        cfg = {"providers": {"up": {"base_url": "https://127.0.0.1:1/v1", "ca_file": str(ca)}}}
        with pytest.raises(ConfigError, match=r"providers\.up\.ca_file"):
            load(write_json(tmp_path, cfg), env={})
