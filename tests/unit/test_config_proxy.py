"""Which proxy a provider goes through: the environment's variables read with urllib's
rules (pinned to the stdlib's own), NO_PROXY, the per-provider setting, and proxy URLs
whose credentials never reach a name, a repr or an error."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from gateway.config import ConfigError, check, load
from gateway.config.proxy import Proxy, environment_proxies, proxy_for

ENVIRONMENTS = [
    {"HTTPS_PROXY": "http://up:1", "http_proxy": "http://low:2"},
    {"HTTPS_PROXY": "http://up:1", "https_proxy": "http://low:2"},  # lower-case wins
    {"HTTP_PROXY": "http://up:1", "http_proxy": ""},  # an empty lower-case one unsets it
    {"HTTP_PROXY": "http://up:1", "REQUEST_METHOD": "GET"},  # CGI: HTTP_PROXY ignored
    {"http_proxy": "http://low:2", "REQUEST_METHOD": "GET"},
    {"ALL_PROXY": "http://all:3", "NO_PROXY": "a.test,.b.test", "Https_Proxy": "http://mixed:4"},
    {"PATH": "/bin", "no_proxy": "*"},
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_proxies_equal_stdlib(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", dict(env))
    assert environment_proxies(env) == urllib.request.getproxies_environment()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.test/v1", "http://s:1"),
        ("http://api.test/v1", "http://p:2"),
        ("https://x.internal.test/v1", None),  # a domain suffix, leading dot
        ("https://internal.test/v1", None),  # ... and the name itself
        ("http://127.0.0.1:8000/v1", None),  # an IP address as written
        ("http://127.0.0.1:8001/v1", None),
        ("http://localhost:9000/v1", None),  # host:port
        ("http://localhost:9001/v1", "http://p:2"),  # another port: proxied (no special case)
        ("http://10.0.0.1/v1", "http://p:2"),
    ],
)
def test_proxy_for_scheme_and_no_proxy(url: str, expected: str | None) -> None:
    proxies = environment_proxies(
        {
            "HTTPS_PROXY": "http://s:1",
            "HTTP_PROXY": "http://p:2",
            "NO_PROXY": ".internal.test, 127.0.0.1,localhost:9000",
        }
    )
    assert proxy_for(url, proxies) == expected


def test_proxy_for_all_proxy_and_star() -> None:
    assert proxy_for("https://a.test", environment_proxies({"ALL_PROXY": "http://all:3"})) == "http://all:3"
    assert proxy_for("https://a.test", environment_proxies({"ALL_PROXY": "http://all:3", "NO_PROXY": "*"})) is None
    assert proxy_for("https://a.test", environment_proxies({"HTTP_PROXY": "http://p:2"})) is None


def test_proxy_url_credentials_only_in_authorization() -> None:
    p = Proxy("http://us%40er:p%3Ass@proxy.test:3128")
    assert (p.host, p.port, p.name) == ("proxy.test", 3128, "http://proxy.test:3128")
    assert (p.user, p.password) == ("us@er", "p:ss")
    assert p.authorization == "Basic dXNAZXI6cDpzcw=="  # base64("us@er:p:ss")
    assert "p:ss" not in repr(p) and "p%3Ass" not in repr(p)
    assert Proxy("proxy.test").name == "http://proxy.test:80"
    assert Proxy("http://proxy.test:8080").authorization is None


@pytest.mark.parametrize("url", ["https://u:sekrit@p.test:443", "socks5://u:sekrit@p.test:1080", "http://u:sekrit@:80"])
def test_proxy_unsupported_url_error_hides_password(url: str) -> None:
    with pytest.raises(ValueError, match="expected an http://host:port proxy URL") as exc:
        Proxy(url)
    assert "sekrit" not in str(exc.value) and "u:" not in str(exc.value)


def _write(tmp_path: Path, providers: dict[str, object]) -> Path:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"providers": providers}))
    return path


def test_config_resolves_proxy_per_provider(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "tls": {"base_url": "https://api.test/v1"},
            "plain": {"base_url": "http://api.test/v1"},
            "listed": {"base_url": "https://in.corp.test/v1"},
            "off": {"base_url": "https://api.test/v1", "proxy": "none"},
            "own": {"base_url": "https://api.test/v1", "proxy": "env.OWN_PROXY"},
            "mock": {"dialect": "mock"},
        },
    )
    env = {
        "HTTPS_PROXY": "http://u:pw@s.test:1",
        "HTTP_PROXY": "http://p.test:2",
        "NO_PROXY": ".corp.test",
        "OWN_PROXY": "http://own.test:3",
    }
    providers = load(path, env=env).providers
    assert {n: p.proxy for n, p in providers.items()} == {
        "tls": "http://u:pw@s.test:1",
        "plain": "http://p.test:2",
        "listed": "none",
        "off": "none",
        "own": "http://own.test:3",
        "mock": "none",
    }
    with pytest.raises(ConfigError, match="OWN_PROXY"):  # a named variable must be set
        load(path, env={})
    unset = _write(tmp_path, {"tls": {"base_url": "https://api.test/v1"}})
    assert load(unset, env={}).providers["tls"].proxy == "none"  # no variables: direct


def test_config_bad_proxy_is_error_without_password(tmp_path: Path) -> None:
    path = _write(tmp_path, {"p": {"base_url": "https://api.test/v1"}})
    with pytest.raises(ConfigError) as exc:
        load(path, env={"HTTPS_PROXY": "https://u:sekrit@s.test:1"})
    message = str(exc.value)
    assert "providers.p.proxy" in message and "HTTPS_PROXY" in message and "https://s.test:1" in message
    assert "sekrit" not in message


def test_config_proxy_password_in_file_warned(tmp_path: Path) -> None:
    path = _write(tmp_path, {"p": {"base_url": "https://api.test/v1", "proxy": "http://u:pw@s.test:1"}})
    _, served, problems = check(path, env={})
    assert served is not None and served.providers["p"].proxy == "http://u:pw@s.test:1"
    assert any("proxy password written in the file" in w for w in problems.warnings)
