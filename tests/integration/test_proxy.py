"""Forward proxies, through a real gateway process whose environment sets HTTPS_PROXY,
HTTP_PROXY and NO_PROXY, in front of the suite's own proxy (``tests.proxy``: CONNECT and
absolute-form, Basic auth), once with each upstream client (the pool, aiohttp's
ClientSession): plain-HTTP and TLS (self-signed, ``ca_file``) upstreams reached through
it for unary calls and streams, NO_PROXY and ``proxy: none`` going direct, a wrong proxy
password and an unreachable proxy each a 502 upstream_connect_error that names the proxy
and never quotes the password."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import Proc, free_port, serve_config
from tests.faulty import COMPLETION, STREAM, FaultyUpstream, Request, respond, respond_chunked
from tests.proxy import ForwardProxy

CHAT = "/v1/chat/completions"
USER = "gw-user"
PASSWORD = "proxy-pass-Zq81x0"  # looked for in logs and bodies
WRONG = "wrong-pass-Kx02p9"
DEAD_PORT = free_port()  # nothing listens there


async def _answer(req: Request, w: asyncio.StreamWriter) -> None:
    if msgspec.json.decode(req.body).get("stream", False):
        await respond_chunked(w, [STREAM])
    else:
        await respond(w, 200, COMPLETION)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("proxy-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _tls_upstream(cert: tuple[Path, Path]) -> FaultyUpstream:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    up = FaultyUpstream(ssl_context=ctx)
    up.on("px")(_answer)
    return up


@pytest.fixture(scope="module")
def tls_up(cert: tuple[Path, Path]) -> Iterator[FaultyUpstream]:
    up = _tls_upstream(cert)
    yield up
    up.stop()


@pytest.fixture(scope="module")
def tls_other(cert: tuple[Path, Path]) -> Iterator[FaultyUpstream]:
    """Another TLS upstream, for a provider without ca_file: the pool keeps one origin
    (and TLS context) per scheme://host:port, so it must not share ``tls_up``'s."""
    up = _tls_upstream(cert)
    yield up
    up.stop()


@pytest.fixture(scope="module")
def proxy() -> Iterator[ForwardProxy]:
    p = ForwardProxy(user=USER, password=PASSWORD)
    yield p
    p.stop()


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(
    request: pytest.FixtureRequest,
    faulty: Any,
    tls_up: FaultyUpstream,
    tls_other: FaultyUpstream,
    proxy: ForwardProxy,
    cert: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proc]:
    faulty.on("px")(_answer)
    plain, tls = faulty.url("px") + "/v1", tls_up.url("px") + "/v1"
    ca = str(cert[0])
    client = request.param
    providers = {
        "plain": {"base_url": plain},
        "tls": {"base_url": tls, "ca_file": ca},
        # The same upstream by another name, which NO_PROXY lists (with its port).
        "bypass": {"base_url": f"http://localhost:{faulty.port}/px/v1"},
        "direct": {"base_url": plain, "proxy": "none"},
        "tls-no-ca": {"base_url": tls_other.url("px") + "/v1"},  # the system's CAs: its certificate is refused
        "wrong-plain": {"base_url": plain, "proxy": "env.WRONG_PROXY"},
        "wrong-tls": {"base_url": tls, "ca_file": ca, "proxy": "env.WRONG_PROXY"},
        "dead-tls": {"base_url": tls, "ca_file": ca, "proxy": "env.DEAD_PROXY"},
        "dead-plain": {"base_url": plain, "proxy": "env.DEAD_PROXY"},
    }
    config = {"providers": {n: {**p, "client": client} for n, p in providers.items()}}
    good = proxy.url(user=USER, password=PASSWORD)
    # Lower-case ones too: they win over upper-case (as in urllib), so one left in the
    # test runner's environment would otherwise be used.
    env = {
        "HTTPS_PROXY": good,
        "HTTP_PROXY": good,
        "https_proxy": good,
        "http_proxy": good,
        "NO_PROXY": f"localhost:{faulty.port}",
        "no_proxy": f"localhost:{faulty.port}",
        "WRONG_PROXY": proxy.url(user=USER, password=WRONG),
        "DEAD_PROXY": f"http://{USER}:{PASSWORD}@127.0.0.1:{DEAD_PORT}",
    }
    proc = serve_config(config, tmp_path_factory.mktemp(f"proxy-{client}"), env=env)
    yield proc
    proc.stop()
    log = proc.log.read_text()
    assert PASSWORD not in log and WRONG not in log
    assert f"plain (openai via proxy http://127.0.0.1:{proxy.port})" in log  # the start-up line


def _chat(gw: Proc, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(gw.url + CHAT, json=body, timeout=20)


def _ok(gw: Proc, provider: str) -> None:
    """A unary call and a stream through ``provider``, both answered."""
    r = _chat(gw, f"{provider}/m")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "ok"
    r = _chat(gw, f"{provider}/m", stream=True)
    assert r.status_code == 200, r.text
    assert '"content":"o"' in r.text and r.text.rstrip().endswith("data: [DONE]")


def test_proxy_carries_http_origin_in_absolute_form(gw: Proc, proxy: ForwardProxy, faulty: Any) -> None:
    before = len(proxy.forwarded)
    _ok(gw, "plain")
    target = f"http://127.0.0.1:{faulty.port}/px/v1/chat/completions"
    assert proxy.forwarded[before:] == [target, target]


def test_proxy_tunnels_tls_origin_with_connect(gw: Proc, proxy: ForwardProxy, tls_up: FaultyUpstream) -> None:
    before = len(tls_up.requests)
    _ok(gw, "tls")
    assert len(tls_up.requests) == before + 2
    # Every connection the TLS upstream was ever given came through a tunnel of the proxy.
    authority = f"localhost:{tls_up.port}"
    assert tls_up.connections >= 1
    assert proxy.tunnels.count(authority) == tls_up.connections


def test_proxy_no_proxy_and_proxy_none_go_direct(gw: Proc, proxy: ForwardProxy, faulty: Any) -> None:
    before, received = list(proxy.forwarded), len(faulty.requests)
    _ok(gw, "bypass")
    _ok(gw, "direct")
    assert proxy.forwarded == before
    assert len(faulty.requests) == received + 4


@pytest.mark.parametrize("provider", ["wrong-plain", "wrong-tls"])
def test_proxy_wrong_password_is_connect_error_without_it(gw: Proc, proxy: ForwardProxy, provider: str) -> None:
    refused = proxy.refused
    for stream in (False, True):
        r = _chat(gw, f"{provider}/m", stream=stream)
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["code"] == "upstream_connect_error"
        assert f"127.0.0.1:{proxy.port}" in error["message"] and "407" in error["message"]
        assert WRONG not in r.text and PASSWORD not in r.text and USER not in r.text
    assert proxy.refused == refused + 2
    assert WRONG not in gw.log.read_text()


@pytest.mark.parametrize("provider", ["dead-plain", "dead-tls"])
def test_proxy_unreachable_is_connect_error_naming_it(gw: Proc, provider: str) -> None:
    r = _chat(gw, f"{provider}/m")
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_connect_error"
    assert f"proxy http://127.0.0.1:{DEAD_PORT}" in error["message"]
    assert PASSWORD not in r.text and USER not in r.text


def test_proxy_tunnel_still_verifies_the_origin_certificate(
    gw: Proc, proxy: ForwardProxy, tls_other: FaultyUpstream
) -> None:
    authority = f"localhost:{tls_other.port}"
    tunnels = proxy.tunnels.count(authority)
    r = _chat(gw, "tls-no-ca/m")
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_connect_error"
    assert "certificate verify failed" in r.json()["error"]["message"].lower()
    assert proxy.tunnels.count(authority) == tunnels + 1  # refused inside the tunnel
