"""Model names are client strings: a model that goes into an upstream URL (Gemini's
``/v1beta/models/{model}:generateContent``) is one plain path segment or a 400, on every
route; a name over the bound is a 400 everywhere; a name never forges a log line.

The upstream is the suite's ``faulty`` server, which records the exact request line and
headers that reached it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from tests.conftest import Proc, serve_config
from tests.faulty import Request, respond

KEY = "AIza-names-upstream-0123456789abcdef"
VK = "sk-bf-names-gem-only-0123456789"
SCENARIO = "names-gem"
GENERATE = json.dumps(
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        "responseId": "r1",
    }
).encode()
MESSAGES = [{"role": "user", "content": "hi"}]
TRAVERSALS = ["../../stats", "ok?key=evil#", "a/b", "..", "ok:generateContent?x=", "x%2F..%2Fy", "ok\r\nX-A: b"]


@pytest.fixture(scope="module")
def gw(faulty: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    @faulty.on(SCENARIO)
    async def _(req: Request, w: Any) -> None:
        await respond(w, 200, GENERATE)

    providers = {
        "gem": {"dialect": "gemini", "base_url": faulty.url(SCENARIO), "keys": [{"value": KEY}], "client": "pool"},
        "gemini": {"dialect": "gemini", "base_url": faulty.url(SCENARIO), "keys": [{"value": KEY}]},
        "mock": {"dialect": "mock"},
    }
    config = {
        "server": {"max_body_bytes": 1024 * 1024},
        "providers": providers,
        "default_provider": "mock",
        "auth": {
            "tokens": [{"name": "ops", "value": "gw-names-token-0123456789"}],
            "virtual_keys": [{"name": "gem-only", "value": VK, "models": ["gem/*", "gemini/*"]}],
        },
    }
    proc = serve_config(config, tmp_path_factory.mktemp("names"))
    yield proc
    proc.stop()


def _upstream_paths(faulty: Any) -> list[str]:
    return [r.path for scenario, r in faulty.requests if scenario == SCENARIO]


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


@pytest.mark.parametrize("model", ["gem/" + m for m in TRAVERSALS] + ["gemini/" + m for m in TRAVERSALS])
def test_model_names_url_model_refused_before_the_upstream(gw: Proc, faulty: Any, model: str) -> None:
    before = len(_upstream_paths(faulty))
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, timeout=10)
    err = _error(r)
    assert err["param"] == "model" and err["type"] == "invalid_request_error"
    # The virtual key allowed only gem/*: the traversal is not let through by the glob either.
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {VK}"},
        timeout=10,
    )
    assert _error(r)["param"] == "model"
    assert len(_upstream_paths(faulty)) == before


def test_model_names_url_model_in_fallbacks_refused(gw: Proc, faulty: Any) -> None:
    before = len(_upstream_paths(faulty))
    body = {"model": "gem/gemini-ok", "fallbacks": ["mock/x", "gem/../../stats"], "messages": MESSAGES}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
    assert _error(r)["param"] == "fallbacks[1]"
    r = httpx.post(
        gw.url + "/anthropic/v1/messages",
        json={"model": "gem/gemini-ok", "max_tokens": 5, "fallbacks": ["gemini/ok?key=evil#"], "messages": MESSAGES},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "fallbacks[0]"
    assert len(_upstream_paths(faulty)) == before


@pytest.mark.parametrize(
    "path",
    [
        "gem%2F..%2F..%2Fstats%3F:generateContent",  # provider/model, percent-encoded in the path
        "..%2F..%2Fstats%3F:generateContent",  # a bare model: the route's own provider
        "ok%3Fkey=evil%23:streamGenerateContent",
        "..:generateContent",
    ],
)
def test_model_names_genai_route_path_model_refused(gw: Proc, faulty: Any, path: str) -> None:
    before = len(_upstream_paths(faulty))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(gw.url + "/genai/v1beta/models/" + path, json=body, timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT" and err["param"] == "model"
    assert len(_upstream_paths(faulty)) == before


def test_model_names_plain_gemini_model_reaches_its_path(gw: Proc, faulty: Any) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "gem/gemini-2.5-flash", "messages": MESSAGES}, timeout=10
    )
    assert r.status_code == 200, r.text
    assert _upstream_paths(faulty)[-1] == "/v1beta/models/gemini-2.5-flash:generateContent"
    opts = types.HttpOptions(base_url=gw.url + "/genai", api_version="v1beta", retry_options=None)
    client = genai.Client(api_key="unused", http_options=opts)
    out = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert out.text == "ok"
    assert _upstream_paths(faulty)[-1] == "/v1beta/models/gemini-2.5-flash:generateContent"


LONG = "x" * 300_000


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {"model": "mock/" + LONG, "messages": MESSAGES}, "model"),
        ("/v1/completions", {"model": LONG, "prompt": "hi"}, "model"),
        (
            "/v1/chat/completions",
            {"model": "mock/x", "fallbacks": ["mock/y", LONG], "messages": MESSAGES},
            "fallbacks[1]",
        ),
        ("/anthropic/v1/messages", {"model": "mock/" + LONG, "max_tokens": 5, "messages": MESSAGES}, "model"),
        (
            "/anthropic/v1/messages",
            {"model": "mock/x", "max_tokens": 5, "fallbacks": [LONG], "messages": MESSAGES},
            "fallbacks[0]",
        ),
    ],
)
def test_model_names_over_the_bound_are_a_400(gw: Proc, route: str, body: dict[str, Any], param: str) -> None:
    r = httpx.post(gw.url + route, json=body, timeout=10)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["param"] == param
    assert len(r.content) < 2000  # the name is not quoted back


def test_model_names_over_the_bound_on_the_genai_route(gw: Proc) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(gw.url + "/genai/v1beta/models/mock%2F" + "x" * 4000 + ":generateContent", json=body, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    # At the bound: served.
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock/" + "y" * 251, "messages": MESSAGES})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def gw_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway of its own: its log holds only what these tests caused."""
    proc = serve_config({"providers": {"mock": {"dialect": "mock"}}}, tmp_path_factory.mktemp("names-log"))
    yield proc
    proc.stop()


def _log_lines(proc: Proc) -> list[str]:
    return Path(proc.log).read_text(errors="replace").split("\n")


def test_model_names_control_characters_never_forge_a_log_line(gw_log: Proc) -> None:
    forged = "2030-01-01 00:00:00,000 ERROR gateway.forged: FORGED-LINE"
    models = [f"mock/cr-lf\r\n{forged}", f"mock/lf\n{forged}", f"mock/esc\x1b[31m\u2028\x85{forged}"]
    for model in models:
        r = httpx.post(gw_log.url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, timeout=10)
        assert r.status_code == 200, r.text
    gw_log.stop()  # the access log is flushed at exit
    lines = _log_lines(gw_log)
    text_lines = [line for line in lines if not line.startswith("{")]
    assert sum("FORGED-LINE" in line for line in text_lines) == 3  # logged (unpriced), escaped
    assert not any(line.startswith(("2030-01-01", "\r")) for line in lines)
    assert not any(c in line for line in text_lines for c in "\r\x1b\u2028\x85")
    # The JSON access log: one line per request, the model intact once decoded.
    logged = [json.loads(line)["model"] for line in lines if line.startswith("{") and "FORGED" in line]
    assert sorted(logged) == sorted(m.removeprefix("mock/") for m in models)


@pytest.fixture(scope="module")
def gw_unpriced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_config({"providers": {"mock": {"dialect": "mock"}}}, tmp_path_factory.mktemp("names-unpriced"))
    yield proc
    proc.stop()


def test_model_names_unpriced_warning_once_per_model_and_rate_limited(gw_unpriced: Proc) -> None:
    gw = gw_unpriced

    def warnings() -> list[str]:
        return [line for line in _log_lines(gw) if "no price known" in line]

    for _ in range(3):
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock/unpriced-same", "messages": MESSAGES})
        assert r.status_code == 200
    assert len(warnings()) == 1
    for i in range(40):
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": f"mock/unpriced-{i}", "messages": MESSAGES})
        assert r.status_code == 200
    # The global bound (10 a minute) holds however many distinct names come.
    assert 1 < len(warnings()) <= 10
