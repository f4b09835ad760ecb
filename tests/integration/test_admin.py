"""The admin API (/api/keys) on real gateway processes, a real ``gateway mock`` upstream
and real clients (httpx for the admin API, the openai SDK with the keys it makes): create,
use, limits, usage, list, revoke; config keys listed and not revocable; every bad input
with its status and error body; the routes absent without an admin token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, RedisServer, free_port, metric
from tests.integration.test_governance import PRICES, error_of

ADMIN_TOKEN = "adm-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONFIG_KEY = "sk-bf-config-key-0123456789ab"
CACHE_S = 0.5


def gateway_config(up: Proc, *, required: bool) -> dict[str, Any]:
    """Auth required: with a config key. Not required: the admin token alone, no key in
    the config (runtime keys must work all the same)."""
    config_keys = [{"name": "from-config", "value": CONFIG_KEY, "rate_limits": [{"requests": 100, "window": "1h"}]}]
    return {
        "providers": {"up": {"base_url": up.url + "/v1", "prices": PRICES}},
        "default_provider": "up",
        "auth": {
            "required": required,
            "admin_token": ADMIN_TOKEN,
            "key_cache_s": CACHE_S,
            "virtual_keys": config_keys if required else [],
        },
    }


def start(
    up: Proc, d: Path, *, required: bool, env: dict[str, str] | None = None, n: int = 0, prefix: str = "gw:"
) -> Proc:
    cfg = d / f"gateway{n}.json"
    cfg.write_text(json.dumps({**gateway_config(up, required=required), "store": {"prefix": prefix}}))
    port = free_port()
    return Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / f"gateway{n}.log", env=env)


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start(up, tmp_path_factory.mktemp("gw-admin"), required=True)
    yield proc
    proc.stop()
    no_secrets_in(proc)


@pytest.fixture(scope="module")
def open_gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Auth not required: an unknown credential is served as anonymous."""
    proc = start(up, tmp_path_factory.mktemp("gw-admin-open"), required=False)
    yield proc
    proc.stop()
    no_secrets_in(proc)


MADE: list[str] = []  # every secret the admin API returned, to look for in the logs


def no_secrets_in(proc: Proc) -> None:
    log = proc.log.read_text()
    assert ADMIN_TOKEN not in log and CONFIG_KEY not in log
    assert not [s for s in MADE if s in log]


def admin(gw: Proc, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, gw.url + path, headers=AUTH if headers is None else headers, timeout=10, **kw)


def create(gw: Proc, **spec: Any) -> dict[str, Any]:
    r = admin(gw, "POST", "/api/keys", json=spec)
    assert r.status_code == 201, r.text
    key: dict[str, Any] = r.json()
    MADE.append(key["value"])
    return key


def chat(gw: Proc, key: str, *, model: str = "gpt-x") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def sdk(gw: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)


def ask(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.usage is not None and r.usage.completion_tokens == 2


def test_admin_created_key_works_is_limited_shown_listed_and_revoked(gw: Proc) -> None:
    key = create(gw, name="team-a", rate_limits=[{"requests": 2, "window": "1h"}])
    secret = key["value"]
    assert secret.startswith("sk-bf-") and len(secret) >= 6 + 43
    assert key["id"] == key["name"] == "team-a" and key["source"] == "api" and key["created_at"].endswith("Z")
    assert key["rate_limits"] == [{"requests": 2, "tokens": None, "window": "1h", "calendar": False}]

    with sdk(gw, secret) as client:
        ask(client)
        ask(client)
        with pytest.raises(openai.RateLimitError) as info:
            ask(client)
    assert "'team-a'" in info.value.message and "2 requests" in info.value.message

    shown = admin(gw, "GET", "/api/keys/team-a")
    assert shown.status_code == 200, shown.text
    (usage,) = shown.json()["usage"]
    assert usage["kind"] == "requests" and usage["window"] == "1h"
    assert usage["limit"] == 2 and usage["used"] == 2 and usage["resets_at"].endswith("Z")
    listed = admin(gw, "GET", "/api/keys")
    assert listed.status_code == 200
    assert next(k for k in listed.json()["data"] if k["id"] == "team-a")["source"] == "api"
    for r in (shown, listed):  # the secret was shown once, at creation
        assert secret not in r.text and '"value"' not in r.text

    revoked = admin(gw, "DELETE", "/api/keys/team-a")
    assert revoked.status_code == 200 and revoked.json() == {"id": "team-a", "deleted": True}
    # Revoked on this process: refused at once, not after the cache time.
    with sdk(gw, secret) as client, pytest.raises(openai.AuthenticationError):
        ask(client)
    assert error_of(admin(gw, "GET", "/api/keys/team-a"), 404)["code"] == "key_not_found"
    assert error_of(admin(gw, "DELETE", "/api/keys/team-a"), 404)["code"] == "key_not_found"


def test_admin_key_spec_applies_and_budget_usage_is_in_usd(gw: Proc) -> None:
    spec = {
        "providers": ["up"],
        "models": ["up/gpt-*"],
        "deny_models": ["up/gpt-secret*"],
        "budgets": [{"usd": 5, "window": "1d"}],
        "max_concurrency": 4,
        "expires_at": "2999-01-01T00:00:00Z",
    }
    key = create(gw, name="spender", **spec)
    for field, value in spec.items():
        assert key[field] == (value if field != "budgets" else [{"usd": 5.0, "window": "1d", "calendar": False}])
    assert chat(gw, key["value"]).status_code == 200  # $2: 2 output tokens at $1
    err = error_of(chat(gw, key["value"], model="up/gpt-secret-1"), 403)
    assert err["code"] == "model_not_allowed" and "'spender'" in err["message"]
    (usage,) = admin(gw, "GET", "/api/keys/spender").json()["usage"]
    assert usage == {**usage, "kind": "budget", "window": "1d", "limit": 5.0, "used": 2.0}
    assert chat(gw, key["value"]).status_code == 200
    assert error_of(chat(gw, key["value"]), 402)["code"] == "budget_exceeded"


@pytest.mark.parametrize(
    ("spec", "code"),
    [({"active": False}, "key_inactive"), ({"expires_at": "2020-01-01T00:00:00Z"}, "key_expired")],
)
def test_admin_inactive_or_expired_key_is_401(gw: Proc, spec: dict[str, Any], code: str) -> None:
    key = create(gw, name=f"refused-{code}", **spec)
    err = error_of(chat(gw, key["value"]), 401)
    assert err["code"] == code and f"'refused-{code}'" in err["message"]


def test_admin_config_keys_are_listed_shown_and_not_revocable(gw: Proc) -> None:
    assert chat(gw, CONFIG_KEY).status_code == 200
    listed = admin(gw, "GET", "/api/keys")
    (cfg,) = [k for k in listed.json()["data"] if k["id"] == "from-config"]
    assert cfg["source"] == "config" and "value" not in cfg and "created_at" not in cfg
    assert cfg["principal"] == "vk:from-config"  # what /api/logs?key= filters on
    shown = admin(gw, "GET", "/api/keys/from-config")
    (usage,) = shown.json()["usage"]
    assert usage["kind"] == "requests" and usage["limit"] == 100 and usage["used"] >= 1
    for r in (listed, shown):
        assert CONFIG_KEY not in r.text
    err = error_of(admin(gw, "DELETE", "/api/keys/from-config"), 409)
    assert err["code"] == "key_in_config" and "config file" in err["message"]
    assert chat(gw, CONFIG_KEY).status_code == 200


def test_admin_names_are_unique(gw: Proc) -> None:
    create(gw, name="once")
    err = error_of(admin(gw, "POST", "/api/keys", json={"name": "once"}), 409)
    assert err["code"] == "key_exists" and err["param"] == "name" and "'once'" in err["message"]
    err = error_of(admin(gw, "POST", "/api/keys", json={"name": "from-config"}), 409)
    assert err["code"] == "key_exists" and "config file" in err["message"]


BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any], str | None, str]] = [
    # (case, body, param, a word the message must hold)
    ("not json", b"{", None, "JSON"),
    ("empty", b"", None, "empty"),
    ("not an object", [], None, "object"),
    ("no name", {}, "name", "name"),
    ("empty name", {"name": ""}, "name", "regex"),
    ("name with a space", {"name": "a b"}, "name", "regex"),
    ("name too long", {"name": "n" * 65}, "name", "regex"),
    ("name not a string", {"name": 7}, "name", "str"),
    ("unknown field", {"name": "x", "colour": "red"}, "colour", "colour"),
    ("a chosen secret", {"name": "x", "value": "sk-bf-mine-0123456789"}, "value", "secret"),
    ("wrong type", {"name": "x", "max_concurrency": "3"}, "max_concurrency", "int"),
    ("zero concurrency", {"name": "x", "max_concurrency": 0}, "max_concurrency", ">= 1"),
    ("negative budget", {"name": "x", "budgets": [{"usd": -1}]}, "budgets[0].usd", "> 0"),
    ("budget without usd", {"name": "x", "budgets": [{"window": "1d"}]}, "budgets[0].usd", "usd"),
    ("negative requests", {"name": "x", "rate_limits": [{"requests": -2}]}, "rate_limits[0].requests", ">= 1"),
    ("bad window", {"name": "x", "rate_limits": [{"requests": 1, "window": "7m"}]}, "rate_limits[0].window", "1h|1d"),
    ("empty rate limit", {"name": "x", "rate_limits": [{"window": "1m"}]}, "rate_limits", "requests, tokens"),
    ("unknown provider", {"name": "x", "providers": ["nope"]}, "providers", "'nope'"),
    ("expiry without a zone", {"name": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at", "time zone"),
    ("expiry not a time", {"name": "x", "expires_at": "soon"}, "expires_at", "datetime"),
]


@pytest.mark.parametrize(("case", "body", "param", "word"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_admin_bad_create_body_is_400_naming_the_problem(
    gw: Proc, case: str, body: bytes | dict[str, Any] | list[Any], param: str | None, word: str
) -> None:
    kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    err = error_of(admin(gw, "POST", "/api/keys", **kw), 400)
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert word in err["message"], err["message"]
    assert error_of(admin(gw, "GET", "/api/keys/x"), 404)["code"] == "key_not_found"  # nothing was made


def test_admin_body_too_large_is_413(gw: Proc) -> None:
    body = {"name": "big", "models": ["up/m" + "x" * 1000] * 70}
    err = error_of(admin(gw, "POST", "/api/keys", json=body), 413)
    assert err["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/keys"), ("POST", "/api/keys"), ("GET", "/api/keys/from-config"), ("DELETE", "/api/keys/x")],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"x-bf-vk": ADMIN_TOKEN},
    ],
    ids=["none", "wrong", "basic", "other header"],
)
def test_admin_without_the_admin_token_is_401(gw: Proc, method: str, path: str, headers: dict[str, str]) -> None:
    err = error_of(admin(gw, method, path, headers=headers, json={"name": "sneaky"}), 401)
    assert err["type"] == "authentication_error" and "admin" in err["message"]


def test_admin_virtual_keys_are_not_admin_tokens(gw: Proc) -> None:
    key = create(gw, name="not-admin")
    for secret in (key["value"], CONFIG_KEY):
        error_of(admin(gw, "GET", "/api/keys", headers={"Authorization": f"Bearer {secret}"}), 401)
    # Nor is the admin token a credential for inference.
    assert error_of(chat(gw, ADMIN_TOKEN), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("PUT", "/api/keys", "GET, POST"), ("DELETE", "/api/keys", "GET, POST"), ("POST", "/api/keys/x", "GET, DELETE")],
)
def test_admin_wrong_method_is_405_with_allow(gw: Proc, method: str, path: str, allow: str) -> None:
    r = admin(gw, method, path)
    assert error_of(r, 405)["code"] == "method_not_allowed" and r.headers["Allow"] == allow


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/keys"), ("POST", "/api/keys"), ("GET", "/api/keys/x"), ("DELETE", "/api/keys/x")]
)
def test_admin_api_is_404_without_an_admin_token(unrouted: Proc, method: str, path: str) -> None:
    err = error_of(admin(unrouted, method, path, json={"name": "x"}), 404)
    assert err["code"] == "unknown_url"


def test_admin_keys_without_auth_required(open_gw: Proc) -> None:
    assert chat(open_gw, "sk-placeholder-from-an-sdk").status_code == 200  # anonymous, as before
    key = create(open_gw, name="capped", rate_limits=[{"requests": 1, "window": "1h"}])
    assert chat(open_gw, key["value"]).status_code == 200
    assert error_of(chat(open_gw, key["value"]), 429)["code"] == "rate_limit_exceeded"
    assert admin(open_gw, "DELETE", "/api/keys/capped").status_code == 200
    # Revoked: a gateway credential it no longer knows is refused, never served anonymously.
    assert error_of(chat(open_gw, key["value"]), 401)["code"] == "invalid_api_key"


# Two gateway processes sharing one real Redis (GATEWAY_REDIS_URL), each with its own cache.


@pytest.fixture(scope="module")
def pair(up: Proc, redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    d = tmp_path_factory.mktemp("gw-admin-redis")
    env = {"GATEWAY_REDIS_URL": redis_server}
    prefix = f"gw-admin-{free_port()}:"  # one for both, apart from other tests' keys
    procs = [start(up, d, required=True, env=env, n=i, prefix=prefix) for i in range(2)]
    yield procs
    for p in procs:
        p.stop()
        no_secrets_in(p)


def refused_within(gw: Proc, secret: str, *, bound_s: float) -> dict[str, Any]:
    """Polls until ``secret`` is refused as unknown (401); fails past ``bound_s``, a
    guard against a hang far above the cache time, not a measurement."""
    deadline = time.monotonic() + bound_s
    while True:
        r = chat(gw, secret)
        if r.status_code == 401:
            return error_of(r, 401)
        assert r.status_code in (200, 429), r.text  # still honoured (429: its limit holds)
        assert time.monotonic() < deadline, f"key still honoured {bound_s} s after its revocation"
        time.sleep(0.05)


def test_admin_redis_key_made_on_one_process_is_shared_and_revoked_on_both(pair: list[Proc]) -> None:
    a, b = pair
    key = create(a, name="shared", rate_limits=[{"requests": 3, "window": "1h"}])
    secret = key["value"]
    with sdk(b, secret) as client:  # usable on B at once: no cached "unknown" to outlive
        ask(client)
    assert chat(a, secret).status_code == 200 and chat(b, secret).status_code == 200
    assert error_of(chat(a, secret), 429)["code"] == "rate_limit_exceeded"  # 3 in total, across both
    shown = admin(b, "GET", "/api/keys/shared").json()
    assert shown["source"] == "api" and shown["usage"][0]["used"] == 3
    assert [k["id"] for k in admin(b, "GET", "/api/keys").json()["data"] if k["source"] == "api"] == ["shared"]
    assert error_of(admin(b, "POST", "/api/keys", json={"name": "shared"}), 409)["code"] == "key_exists"

    assert admin(a, "DELETE", "/api/keys/shared").status_code == 200
    assert error_of(chat(a, secret), 401)["code"] == "invalid_api_key"  # at once on A
    assert refused_within(b, secret, bound_s=CACHE_S + 10)["code"] == "invalid_api_key"  # B: after its cache time
    assert error_of(admin(b, "GET", "/api/keys/shared"), 404)["code"] == "key_not_found"
    assert error_of(admin(b, "DELETE", "/api/keys/shared"), 404)["code"] == "key_not_found"


@pytest.fixture(scope="module")
def outage(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Proc, Proc]]:
    """A Redis of its own, to stop, and two gateways on it: failing closed, failing open."""
    d = tmp_path_factory.mktemp("gw-admin-outage")
    server = RedisServer(d)
    closed = start(up, d, required=True, env={"GATEWAY_REDIS_URL": server.url}, n=0)
    opened = start(up, d, required=True, env={"GATEWAY_REDIS_URL": server.url, "GATEWAY_STORE_FAIL_OPEN": "1"}, n=1)
    yield server, closed, opened
    for p in (closed, opened):
        p.stop()
    server.stop()


def test_admin_store_down_fails_key_lookups_closed_or_open(outage: tuple[RedisServer, Proc, Proc]) -> None:
    server, closed, opened = outage
    secret = create(closed, name="before-outage")["value"]
    assert chat(closed, secret).status_code == 200
    unseen = "sk-bf-never-looked-up-0123456789"
    server.stop()
    before = metric(closed, "gateway_store_errors_total")
    err = error_of(chat(closed, unseen), 503)
    assert err["code"] == "store_unavailable"
    assert metric(closed, "gateway_store_errors_total") > before
    assert error_of(admin(closed, "GET", "/api/keys"), 503)["code"] == "store_unavailable"
    # fail_open serves uncounted, but never lets an unchecked credential past required auth.
    assert error_of(chat(opened, unseen), 503)["code"] == "store_unavailable"
    server.start()  # empty: the key is gone
    assert refused_within(closed, secret, bound_s=CACHE_S + 10)["code"] == "invalid_api_key"
    assert error_of(chat(closed, unseen), 401)["code"] == "invalid_api_key"


def test_admin_keys_show_the_principal_their_requests_are_logged_as(gw: Proc) -> None:
    import json as _json
    import time

    key = create(gw, name="logged-as")
    assert key["principal"].startswith("key:logged-as:")
    assert chat(gw, key["value"]).status_code == 200
    listed = {k["id"]: k for k in admin(gw, "GET", "/api/keys").json()["data"]}
    assert listed["logged-as"]["principal"] == key["principal"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [_json.loads(x) for x in gw.log.read_text().splitlines() if x.startswith('{"ts"')]
        if any(line.get("principal") == key["principal"] for line in lines):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no access log line with the key's principal")


def test_health_providers_needs_the_admin_token_when_there_is_one(gw: Proc) -> None:
    assert httpx.get(gw.url + "/health").json() == {"status": "ok"}  # liveness stays open
    r = httpx.get(gw.url + "/health?providers=1")
    assert r.status_code == 401
    r = httpx.get(gw.url + "/health?providers=1", headers=AUTH)
    assert r.status_code == 200 and "providers" in r.json()
