"""Async inference on real gateway processes, a real ``gateway mock`` upstream and real
clients (the openai SDK on the ``x-bf-async`` headers, httpx on ``/v1/async/...``):
submit, poll, results as the synchronous route serves them, errors stored and served,
refusals at submit, ownership, the result TTL, the pending cap; with Redis, jobs
submitted to one process polled from another, and a process's shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.config import load
from gateway.server.app import Gateway
from tests.conftest import Proc, free_port, metric

VK_A = "sk-bf-async-a-0123456789abcdef"
VK_B = "sk-bf-async-b-0123456789abcdef"
VK_NARROW = "sk-bf-async-narrow-0123456789ab"
VK_ONCE = "sk-bf-async-once-0123456789abcd"
VK_OFF = "sk-bf-async-off-0123456789abcde"
VK_SINGLE = "sk-bf-async-single-0123456789ab"
PRICES = {"gpt-x": {"input_mtok": 1, "output_mtok": 2}}
MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-x", "messages": MESSAGES, "max_tokens": 3}
POLLS = 400  # x 0.05 s: a bound on waiting, not a timing assertion
SLOW = {"ttft_ms": 3000}  # keeps a job pending while the test looks at it


def config(up: Proc, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"up": {"base_url": up.url + "/v1", "prices": PRICES}},
        "default_provider": "up",
        "auth": {
            "virtual_keys": [
                {"name": "a", "value": VK_A},
                {"name": "b", "value": VK_B},
                {"name": "narrow", "value": VK_NARROW, "models": ["up/gpt-x"]},
                {"name": "once", "value": VK_ONCE, "rate_limits": [{"requests": 1, "window": "1h"}]},
                {"name": "off", "value": VK_OFF, "active": False},
                {"name": "single", "value": VK_SINGLE, "max_concurrency": 1},
            ]
        },
        **extra,
    }


def serve(cfg: dict[str, Any], d: Path, *, name: str = "gateway", env: dict[str, str] | None = None) -> Proc:
    path = d / f"{name}.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    return Proc(["serve", "--config", str(path), "--port", str(port)], port=port, log=d / f"{name}.log", env=env)


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve(config(up), tmp_path_factory.mktemp("gw-jobs"))
    yield proc
    proc.stop()
    assert VK_A not in proc.log.read_text()


@pytest.fixture
def sdk(gw: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=VK_A, max_retries=0, timeout=20) as client:
        yield client


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def submit(
    gw: Proc,
    key: str | None = VK_A,
    *,
    path: str = "/v1/async/chat/completions",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return httpx.post(gw.url + path, json=body or CHAT, headers={**auth(key), **(headers or {})}, timeout=10)


def get(gw: Proc, job_id: str, key: str | None = VK_A, *, path: str = "/v1/async/chat/completions") -> httpx.Response:
    return httpx.get(f"{gw.url}{path}/{job_id}", headers=auth(key), timeout=10)


def poll_header(gw: Proc, job_id: str, key: str | None = VK_A, *, path: str = "/v1/chat/completions") -> httpx.Response:
    """A poll on an OpenAI route: its body is neither validated nor used."""
    return httpx.post(gw.url + path, content=b"", headers={**auth(key), "x-bf-async-id": job_id}, timeout=10)


def until_done(poll: Callable[[], httpx.Response]) -> httpx.Response:
    for _ in range(POLLS):
        r = poll()
        if r.status_code != 202:
            return r
        time.sleep(0.05)
    raise AssertionError(f"job still unfinished after {POLLS} polls: {r.text}")


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def without_volatile(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what differs between two servings (ids, times, latency)."""
    out = {k: v for k, v in answer.items() if k not in ("id", "created")}
    out["extra_fields"] = {k: v for k, v in answer["extra_fields"].items() if k != "latency"}
    return out


# --- the x-bf-async headers on the OpenAI routes, through the openai SDK -------------


def test_sdk_chat_job_is_polled_to_the_synchronous_answer(sdk: openai.OpenAI) -> None:
    sync = sdk.chat.completions.with_raw_response.create(model="gpt-x", messages=MESSAGES, max_tokens=3)  # type: ignore[arg-type]
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-x",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=3,
        extra_headers={"x-bf-async": "true"},
    )
    assert raw.status_code == 202
    pending = raw.parse()
    assert pending.id.startswith("job-") and pending.choices == [] and pending.model == "gpt-x"
    job = (pending.model_extra or {})["extra_fields"]["async_job"]
    assert job["id"] == pending.id and job["status"] == "pending"
    datetime.fromisoformat(job["created_at"])
    for _ in range(POLLS):
        # The SDK wants a model and messages; the gateway reads neither on a poll.
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-x", messages=[], extra_headers={"x-bf-async-id": pending.id}
        )
        if raw.status_code != 202:
            break
        assert raw.parse().choices == []
        time.sleep(0.05)
    assert raw.status_code == 200
    assert raw.headers["x-bifrost-provider"] == "up"
    done = raw.parse()
    assert done.choices[0].message.content and done.usage is not None and done.usage.completion_tokens == 3
    answer, expected = json.loads(raw.content), json.loads(sync.content)
    assert answer["usage"]["cost"]["total_cost"] > 0
    assert without_volatile(answer) == without_volatile(expected)


def test_sdk_text_completion_job_under_the_openai_prefix(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/openai/v1", api_key=VK_A, max_retries=0, timeout=20) as client:
        raw = client.completions.with_raw_response.create(
            model="gpt-x", prompt="hi", max_tokens=2, extra_headers={"x-bf-async": "true"}
        )
        assert raw.status_code == 202
        pending = raw.parse()
        assert pending.object == "text_completion" and pending.choices == []
        for _ in range(POLLS):
            raw = client.completions.with_raw_response.create(
                model="gpt-x", prompt="", extra_headers={"x-bf-async-id": pending.id}
            )
            if raw.status_code != 202:
                break
            time.sleep(0.05)
    assert raw.status_code == 200
    done = raw.parse()
    assert done.choices[0].text and done.usage is not None and done.usage.completion_tokens == 2
    assert json.loads(raw.content)["extra_fields"]["request_type"] == "text_completion"


def test_x_bf_async_false_is_an_ordinary_request(gw: Proc) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"x-bf-async": "false"})
    assert r.status_code == 200 and r.json()["choices"]


# --- the /v1/async routes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "request_type"),
    [
        ("/v1/async/chat/completions", CHAT, "chat_completion"),
        ("/openai/v1/async/completions", {"model": "gpt-x", "prompt": "hi", "max_tokens": 2}, "text_completion"),
    ],
)
def test_async_route_submit_then_poll(gw: Proc, path: str, body: dict[str, Any], request_type: str) -> None:
    r = submit(gw, path=path, **body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert set(job) == {"id", "status", "created_at"} and job["status"] == "pending"
    r = until_done(lambda: get(gw, job["id"], path=path))
    assert r.status_code == 200
    done = r.json()
    assert set(done) == {"id", "status", "created_at", "completed_at", "expires_at", "status_code", "result"}
    assert done["id"] == job["id"] and done["status"] == "completed" and done["status_code"] == 200
    assert done["created_at"] == job["created_at"]
    completed, expires = datetime.fromisoformat(done["completed_at"]), datetime.fromisoformat(done["expires_at"])
    assert (expires - completed).total_seconds() == 3600  # the default result TTL
    result = done["result"]
    assert result["extra_fields"]["request_type"] == request_type and result["usage"]["cost"]["total_cost"] > 0


def test_result_ttl_header_is_honoured(gw: Proc) -> None:
    r = submit(gw, headers={"x-bf-async-job-result-ttl": "1"})
    job_id = r.json()["id"]
    done = until_done(lambda: get(gw, job_id)).json()
    completed, expires = datetime.fromisoformat(done["completed_at"]), datetime.fromisoformat(done["expires_at"])
    assert (expires - completed).total_seconds() == 1
    for _ in range(POLLS):
        r = get(gw, job_id)
        if r.status_code == 404:
            break
        time.sleep(0.05)
    assert error_of(r, 404)["code"] == "job_not_found"
    assert poll_header(gw, job_id).status_code == 404


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "inf", "1e9"])
def test_bad_result_ttl_is_400(gw: Proc, value: str) -> None:
    before = metric(gw, "gateway_async_jobs_total", event="submitted")
    for path in ("/v1/async/chat/completions", "/v1/chat/completions"):
        r = submit(gw, path=path, headers={"x-bf-async": "true", "x-bf-async-job-result-ttl": value})
        err = error_of(r, 400)
        assert err["code"] == "invalid_header" and err["param"] == "x-bf-async-job-result-ttl"
    assert metric(gw, "gateway_async_jobs_total", event="submitted") == before


def test_stream_with_async_is_400(gw: Proc, sdk: openai.OpenAI) -> None:
    r = submit(gw, **{**CHAT, "stream": True})
    assert error_of(r, 400)["param"] == "stream"
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(
            model="gpt-x",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-bf-async": "true"},
        )
    assert e.value.status_code == 400 and e.value.param == "stream"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-x"},  # no messages
        {"model": "gpt-x", "messages": MESSAGES, "temperature": 7},
        {"model": "gpt-x", "messages": [{"role": "nobody", "content": "hi"}]},
    ],
)
def test_bad_body_is_the_synchronous_400(gw: Proc, body: dict[str, Any]) -> None:
    sync = error_of(httpx.post(gw.url + "/v1/chat/completions", json=body), 400)
    assert error_of(submit(gw, **body), 400) == sync
    assert error_of(submit(gw, path="/v1/chat/completions", headers={"x-bf-async": "true"}, **body), 400) == sync
    r = httpx.post(gw.url + "/v1/async/chat/completions", content=b"{not json")
    assert error_of(r, 400)["code"] == "invalid_json"


def test_bad_forwarded_header_is_400_at_submit(gw: Proc) -> None:
    for path, headers in (
        ("/v1/async/chat/completions", {}),
        ("/v1/chat/completions", {"x-bf-async": "true"}),
    ):
        r = submit(gw, path=path, headers={**headers, "x-bf-eh-host": "elsewhere"})
        assert error_of(r, 400)["param"] == "x-bf-eh-host"


@pytest.mark.parametrize("job_id", ["job-" + "0" * 32, "job-nosuch", "", "job-" + "0" * 31 + "/x"])
def test_unknown_job_is_404(gw: Proc, job_id: str) -> None:
    assert error_of(get(gw, job_id), 404)["code"] == "job_not_found"
    err = error_of(poll_header(gw, job_id), 404)
    assert err["code"] == "job_not_found" and err["param"] == "x-bf-async-id"


def test_a_job_is_visible_only_to_its_credential(gw: Proc) -> None:
    job_id = submit(gw, VK_A).json()["id"]
    for other in (VK_B, VK_NARROW, None, "sk-some-placeholder"):
        assert error_of(get(gw, job_id, other), 404)["code"] == "job_not_found"
        assert poll_header(gw, job_id, other).status_code == 404
    assert until_done(lambda: get(gw, job_id, VK_A)).status_code == 200
    # Unknown credentials (an SDK's placeholder, auth not required) own their jobs too,
    # by the credential's digest; no credential at all is "anonymous".
    job_id = submit(gw, "sk-placeholder-one").json()["id"]
    assert get(gw, job_id, "sk-placeholder-two").status_code == 404
    assert get(gw, job_id, None).status_code == 404
    assert until_done(lambda: get(gw, job_id, "sk-placeholder-one")).status_code == 200
    job_id = submit(gw, None).json()["id"]
    assert get(gw, job_id, "sk-placeholder-one").status_code == 404
    assert until_done(lambda: get(gw, job_id, None)).status_code == 200


def test_a_job_is_bound_to_its_request_type(gw: Proc) -> None:
    job_id = submit(gw).json()["id"]
    assert until_done(lambda: get(gw, job_id)).status_code == 200
    assert error_of(get(gw, job_id, path="/v1/async/completions"), 404)["code"] == "job_not_found"
    assert poll_header(gw, job_id, path="/v1/completions").status_code == 404
    assert poll_header(gw, job_id, path="/openai/v1/chat/completions").status_code == 200


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (VK_NARROW, {"model": "up/gpt-y", "messages": MESSAGES}, 403, "model_not_allowed"),
        (VK_NARROW, {"model": "gpt-x", "messages": MESSAGES, "fallbacks": ["up/gpt-y"]}, 403, "model_not_allowed"),
        (VK_OFF, CHAT, 401, "key_inactive"),
    ],
)
def test_governance_refuses_at_submit(gw: Proc, key: str, body: dict[str, Any], status: int, code: str) -> None:
    before = metric(gw, "gateway_async_jobs_total", event="submitted")
    assert error_of(submit(gw, key, **body), status)["code"] == code
    r = submit(gw, key, path="/v1/chat/completions", headers={"x-bf-async": "true"}, **body)
    assert error_of(r, status)["code"] == code
    assert metric(gw, "gateway_async_jobs_total", event="submitted") == before


def test_rate_limit_counts_jobs_at_submit(gw: Proc) -> None:
    assert submit(gw, VK_ONCE).status_code == 202
    r = submit(gw, VK_ONCE)
    assert error_of(r, 429)["code"] == "rate_limit_exceeded" and r.headers["Retry-After"]


def test_a_running_job_holds_its_concurrency_slot_until_it_ends(gw: Proc) -> None:
    job_id = submit(gw, VK_SINGLE, **{**CHAT, "mock": SLOW}).json()["id"]
    assert error_of(submit(gw, VK_SINGLE), 429)["code"] == "concurrency_limit_exceeded"
    assert until_done(lambda: get(gw, job_id, VK_SINGLE)).status_code == 200
    # Settled when it ended: the slot is free again.
    for _ in range(POLLS):
        r = submit(gw, VK_SINGLE)
        if r.status_code == 202:
            break
        time.sleep(0.05)
    assert r.status_code == 202, r.text


def test_failed_upstream_is_stored_and_served(gw: Proc) -> None:
    body = {**CHAT, "mock": {"fail_status": 503}}
    sync = httpx.post(gw.url + "/v1/chat/completions", json=body)
    assert sync.status_code == 503
    before = metric(gw, "gateway_async_jobs_total", event="failed")
    job_id = submit(gw, **body).json()["id"]
    done = until_done(lambda: get(gw, job_id))
    assert done.status_code == 200
    job = done.json()
    assert job["status"] == "failed" and job["status_code"] == 503 and "result" not in job
    assert job["error"] == sync.json()
    # On the OpenAI route: the error exactly as the synchronous route answered it.
    r = poll_header(gw, job_id)
    assert r.status_code == 503 and r.json() == sync.json()
    assert metric(gw, "gateway_async_jobs_total", event="failed") == before + 1


def test_metrics_count_jobs(gw: Proc) -> None:
    submitted = metric(gw, "gateway_async_jobs_total", event="submitted")
    completed = metric(gw, "gateway_async_jobs_total", event="completed")
    job_id = submit(gw).json()["id"]
    assert until_done(lambda: get(gw, job_id)).status_code == 200
    assert metric(gw, "gateway_async_jobs_total", event="submitted") == submitted + 1
    assert metric(gw, "gateway_async_jobs_total", event="completed") == completed + 1


# --- the pending cap ----------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve(config(up, jobs={"max_pending": 2}), tmp_path_factory.mktemp("gw-jobs-cap"))
    yield proc
    proc.stop()


def test_pending_cap_refuses_with_429(capped: Proc) -> None:
    slow = {**CHAT, "max_tokens": 1, "mock": SLOW}
    ids = [submit(capped, **slow).json()["id"] for _ in range(2)]
    r = submit(capped, VK_B, **slow)
    assert error_of(r, 429)["code"] == "too_many_pending_jobs"
    r = submit(capped, VK_B, path="/v1/chat/completions", headers={"x-bf-async": "true"}, **slow)
    assert error_of(r, 429)["code"] == "too_many_pending_jobs"
    assert metric(capped, "gateway_async_jobs_total", event="refused") == 2
    for job_id in ids:
        assert until_done(lambda job_id=job_id: get(capped, job_id)).status_code == 200
    assert submit(capped, VK_B).status_code == 202  # finished jobs free their places


# --- two processes on one Redis -----------------------------------------------------


@pytest.fixture(scope="module")
def redis_config(up: Proc, redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gw-jobs-redis") / "gateway.json"
    path.write_text(json.dumps(config(up, store={"prefix": f"gw-jobs-{free_port()}:"})))
    return path


@pytest.fixture(scope="module")
def pair(redis_config: Path, redis_server: str) -> Iterator[list[Proc]]:
    procs = []
    for i in range(2):
        port = free_port()
        procs.append(
            Proc(
                ["serve", "--config", str(redis_config), "--port", str(port)],
                port=port,
                log=redis_config.parent / f"gateway{i}.log",
                env={"GATEWAY_REDIS_URL": redis_server},
            )
        )
    yield procs
    for p in procs:
        p.stop()


def test_job_submitted_to_one_process_is_polled_from_the_other(pair: list[Proc]) -> None:
    a, b = pair
    job_id = submit(a, **{**CHAT, "mock": {"ttft_ms": 200}}).json()["id"]
    assert error_of(get(b, job_id, VK_B), 404)["code"] == "job_not_found"
    assert poll_header(b, job_id, VK_B).status_code == 404
    done = until_done(lambda: get(b, job_id))
    assert done.status_code == 200 and done.json()["result"]["usage"]["cost"]["total_cost"] > 0
    r = poll_header(b, job_id)
    assert r.status_code == 200 and r.headers["x-bifrost-provider"] == "up" and r.json()["choices"]
    assert get(b, job_id, VK_B).status_code == 404


def test_shutdown_waits_for_jobs_then_records_the_rest_failed(
    pair: list[Proc], redis_config: Path, redis_server: str
) -> None:
    """A gateway in this process on the same Redis: one job ends within the shutdown's
    grace and is stored; one would take a minute, is cancelled at the end of the grace,
    and is stored failed (503). Both are read from another process."""
    cfg = load(redis_config, env={"GATEWAY_REDIS_URL": redis_server, "GATEWAY_SHUTDOWN_GRACE_S": "3"})

    async def run() -> tuple[str, str]:
        gateway = Gateway(cfg)
        port = await gateway.start(host="127.0.0.1", port=0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth(VK_A)) as client:
                quick = await client.post("/v1/async/chat/completions", json={**CHAT, "mock": {"ttft_ms": 300}})
                stuck = await client.post("/v1/async/chat/completions", json={**CHAT, "mock": {"ttft_ms": 60000}})
        finally:
            await gateway.stop()
        return quick.json()["id"], stuck.json()["id"]

    quick, stuck = asyncio.run(run())
    r = get(pair[1], quick)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = get(pair[1], stuck)
    assert r.status_code == 200
    job = r.json()
    assert job["status"] == "failed" and job["status_code"] == 503
    assert job["error"]["error"]["code"] == "gateway_shutdown"
