"""The request log store and ``GET /api/logs`` on real gateway processes (two workers
writing one SQLite file), a real ``gateway mock`` upstream and real clients: every
answered request stored with the fields of its answer, every filter and the cursor
paging, bad parameters, the admin token, the store switched off, and retention by age
and by size on a file filled before start."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.server.access import Line
from gateway.state.sqlite import _INSERT, connect
from tests.conftest import Proc, free_port
from tests.integration.test_governance import error_of

ADMIN_TOKEN = "adm-logs-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VK = "sk-bf-logs-team-a-0123456789"
PRICES = {"gpt-a": {"input_mtok": 1.0, "output_mtok": 2.0}}
CHAT = "/v1/chat/completions"
GAP_S = 0.01


def config(up: Proc, d: Path, *, admin: bool = True, logs: dict[str, Any] | None = None) -> Path:
    auth: dict[str, Any] = {"virtual_keys": [{"name": "team-a", "value": VK}]}
    if admin:
        auth["admin_token"] = ADMIN_TOKEN
    cfg = {
        "providers": {
            "up": {"base_url": up.url + "/v1", "prices": PRICES},
            "other": {"base_url": up.url + "/v1"},
        },
        "default_provider": "up",
        "auth": auth,
        "logs": {"enabled": True, "path": str(d / "logs.sqlite3"), "flush_s": 0.05} if logs is None else logs,
    }
    path = d / "gateway.json"
    path.write_text(json.dumps(cfg))
    return path


def serve(cfg: Path, *, workers: int = 1) -> Proc:
    port = free_port()
    args = ["serve", "--config", str(cfg), "--port", str(port), "--workers", str(workers)]
    return Proc(args, port=port, log=cfg.parent / "gateway.log")


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Two workers: both write the one file, either answers /api/logs."""
    proc = serve(config(up, tmp_path_factory.mktemp("gw-logs")), workers=2)
    yield proc
    proc.stop()
    log = proc.log.read_text()
    assert VK not in log and ADMIN_TOKEN not in log and "hello logs" not in log


def logs(gw: Proc, **params: str | float) -> httpx.Response:
    return httpx.get(gw.url + "/api/logs", params=params, headers=AUTH, timeout=10)


def rows(gw: Proc, **params: str | float) -> list[dict[str, Any]]:
    r = logs(gw, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and set(body) == {"object", "data", "next_cursor"}
    data: list[dict[str, Any]] = body["data"]
    return data


def until_stored(gw: Proc, ids: set[str], *, since: float) -> dict[str, dict[str, Any]]:
    """The rows of ``ids`` (written in batches: a bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        found = {r["request_id"]: r for r in rows(gw, limit=1000, **{"from": since})}
        if ids <= set(found) or time.monotonic() > deadline:
            assert ids <= set(found), ids - set(found)
            return found
        time.sleep(0.05)


class Sent(msgspec.Struct):
    t0: float  # before the first request
    fence: float  # ts of a request after the last: the window [t0, fence) holds exactly these
    answers: dict[str, httpx.Response]  # by request id
    rows: list[dict[str, Any]]  # the window, newest first, as /api/logs returns it


def chat(model: str, *, stream: bool = False, mock: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello logs"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    if mock is not None:
        body["mock"] = mock
    return body


@pytest.fixture(scope="module")
def sent(gw: Proc) -> Sent:
    """One request of each kind, each with its own request id; sent one after another."""
    tag = uuid.uuid4().hex[:8]
    vk = {"Authorization": f"Bearer {VK}"}
    cases: list[tuple[str, str, dict[str, Any] | bytes | None, dict[str, str]]] = [
        ("POST", CHAT, chat("up/gpt-a"), vk),
        ("POST", CHAT, chat("other/gpt-b"), {}),
        ("POST", CHAT, chat("up/gpt-a", stream=True), vk),
        ("POST", CHAT, chat("up/gpt-a", mock={"fail_status": 500}), vk),
        ("POST", CHAT, chat("other/gpt-b", mock={"fail_status": 429}), {}),
        ("POST", CHAT, b"{not json", {}),
        ("GET", "/v1/nowhere", None, {}),
        ("POST", CHAT, chat("up/gpt-c"), vk),
    ]
    # Timestamps are whole milliseconds: a gap of 10 ms keeps the window's edges apart
    # from the health probes before it and the fence after it.
    time.sleep(GAP_S)
    t0 = time.time() - 0.001
    answers = {}
    with httpx.Client(base_url=gw.url, timeout=20) as client:
        for n, (method, path, body, headers) in enumerate(cases):
            rid = f"logs-{tag}-{n}"
            kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"content": body}
            r = client.request(method, path, headers={**headers, "x-request-id": rid}, **kw)
            assert r.headers["x-request-id"] == rid
            answers[rid] = r
        fence = f"logs-{tag}-fence"
        time.sleep(GAP_S)
        client.get("/health", headers={"x-request-id": fence})
    found = until_stored(gw, {*answers, fence}, since=t0)
    window = rows(gw, limit=1000, **{"from": t0, "to": found[fence]["ts"]})
    assert {r["request_id"] for r in window} == set(answers)
    return Sent(t0=t0, fence=found[fence]["ts"], answers=answers, rows=window)


def test_log_store_rows_match_the_answers(sent: Sent) -> None:
    by_id = {r["request_id"]: r for r in sent.rows}
    assert [r["ts"] for r in sent.rows] == sorted((r["ts"] for r in sent.rows), reverse=True)
    for rid, answer in sent.answers.items():
        row = by_id[rid]
        assert row["status"] == answer.status_code
        assert set(row) == {
            "ts", "request_id", "method", "path", "status", "latency_ms", "principal", "provider", "model",
            "stream", "fallback_index", "tokens_in", "tokens_out", "cost_usd", "upstream_ms", "error",
        }  # fmt: skip
        assert sent.t0 <= row["ts"] < sent.fence and row["latency_ms"] >= 0, row
        if answer.status_code >= 400:
            assert row["error"] and row["tokens_out"] == 0
        else:
            assert row["error"] is None
        if answer.status_code == 200 and not row["stream"]:
            usage = answer.json()["usage"]
            assert (row["tokens_in"], row["tokens_out"]) == (usage["prompt_tokens"], usage["completion_tokens"])
            if "cost" in usage:
                assert row["cost_usd"] == pytest.approx(usage["cost"]["total_cost"])
            else:  # an unpriced model: no cost is known, and none is made up
                assert row["cost_usd"] is None
            assert row["latency_ms"] >= row["upstream_ms"] > 0
    ok, other, streamed, failed, limited, bad, missing, c = (by_id[rid] for rid in sent.answers)
    assert (ok["method"], ok["path"], ok["provider"], ok["model"], ok["principal"]) == (
        "POST", CHAT, "up", "gpt-a", "vk:team-a"
    )  # fmt: skip
    assert ok["cost_usd"] > 0 and ok["stream"] is False and ok["fallback_index"] == 0
    assert (other["provider"], other["model"], other["principal"]) == ("other", "gpt-b", "anonymous")
    assert streamed["stream"] is True and streamed["tokens_out"] > 0 and streamed["status"] == 200
    assert (failed["status"], failed["provider"], failed["principal"]) == (500, "up", "vk:team-a")
    assert (limited["status"], limited["provider"]) == (429, "other")
    assert (bad["status"], bad["provider"], bad["model"], bad["error"]) == (400, None, None, "invalid_request_error")
    assert (missing["method"], missing["path"], missing["status"], missing["principal"]) == (
        "GET", "/v1/nowhere", 404, None
    )  # fmt: skip
    assert c["model"] == "gpt-c"


FILTERS: list[tuple[dict[str, str], Callable[[dict[str, Any]], bool]]] = [
    ({"model": "gpt-a"}, lambda r: r["model"] == "gpt-a"),
    ({"provider": "other"}, lambda r: r["provider"] == "other"),
    ({"status": "500"}, lambda r: r["status"] == 500),
    ({"status": "200"}, lambda r: r["status"] == 200),
    ({"status": "4xx"}, lambda r: 400 <= r["status"] < 500),
    ({"status": "5XX"}, lambda r: r["status"] >= 500),
    ({"status": "2xx"}, lambda r: r["status"] < 300),
    ({"key": "vk:team-a"}, lambda r: r["principal"] == "vk:team-a"),
    ({"key": "anonymous"}, lambda r: r["principal"] == "anonymous"),
    ({"model": "gpt-a", "status": "2xx", "key": "vk:team-a"}, lambda r: r["model"] == "gpt-a" and r["status"] < 300),
    ({"provider": "up", "model": "gpt-b"}, lambda r: False),
]


@pytest.mark.parametrize(("params", "matches"), FILTERS, ids=[json.dumps(p) for p, _ in FILTERS])
def test_log_store_filter_selects_exactly_the_matching_rows(
    gw: Proc, sent: Sent, params: dict[str, str], matches: Callable[[dict[str, Any]], bool]
) -> None:
    got = rows(gw, **{"from": sent.t0, "to": sent.fence}, **params)
    assert got == [r for r in sent.rows if matches(r)]


def test_log_store_time_range_rfc3339_and_unix_seconds(gw: Proc, sent: Sent) -> None:
    stamps = sorted({r["ts"] for r in sent.rows})  # rows may share a millisecond
    assert len(stamps) >= 3
    lo, hi = stamps[1], stamps[-1]
    expected = [r for r in sent.rows if lo <= r["ts"] < hi]
    assert expected and len(expected) < len(sent.rows) - 1  # both ends cut something
    assert rows(gw, **{"from": lo, "to": hi}) == expected
    iso = datetime.fromtimestamp(sent.t0, UTC).isoformat()  # "...+00:00"
    zulu = datetime.fromtimestamp(sent.fence, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert rows(gw, **{"from": iso, "to": sent.fence}) == sent.rows
    assert rows(gw, **{"from": sent.t0, "to": zulu})[-1] == sent.rows[-1]
    # An unescaped "+" reaches the server as a space; the offset still counts.
    raw = httpx.get(f"{gw.url}/api/logs?from={iso}&to={sent.fence}", headers=AUTH, timeout=10)
    assert raw.json()["data"] == sent.rows


def test_log_store_cursor_pages_through_the_window(gw: Proc, sent: Sent) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | float] = {"from": sent.t0, "to": sent.fence, "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        body = logs(gw, **params).json()
        assert len(body["data"]) <= 3
        seen += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sent.rows and pages == 3  # 8 rows: 3 + 3 + 2
    # A cursor with filters: the next page of 4xx.
    first = logs(gw, **{"from": sent.t0, "to": sent.fence, "status": "4xx", "limit": 1}).json()
    second = rows(gw, **{"from": sent.t0, "to": sent.fence, "status": "4xx", "cursor": first["next_cursor"]})
    assert first["data"] + second == [r for r in sent.rows if 400 <= r["status"] < 500]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("from=yesterday", "from"),
        ("to=2025-06-01T12:00:00", "to"),  # no zone
        ("from=100&to=50", "to"),
        ("status=99", "status"),
        ("status=6xx", "status"),
        ("status=ok", "status"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMl0x", "cursor"),
        ("model=", "model"),
        ("model=a&model=b", "model"),
        ("modle=gpt-a", "modle"),
        (f"key={'k' * 600}", "key"),
    ],
)
def test_log_store_bad_parameter_is_400_naming_it(gw: Proc, query: str, param: str) -> None:
    err = error_of(httpx.get(f"{gw.url}/api/logs?{query}", headers=AUTH, timeout=10), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_log_store_needs_the_admin_token(gw: Proc) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        err = error_of(httpx.get(gw.url + "/api/logs", headers=headers, timeout=10), 401)
        assert err["type"] == "authentication_error"
    # A virtual key is no admin token.
    error_of(httpx.get(gw.url + "/api/logs", headers={"Authorization": f"Bearer {VK}"}, timeout=10), 401)
    error_of(httpx.post(gw.url + "/api/logs", headers=AUTH, timeout=10), 405)


def test_log_store_nothing_dropped(gw: Proc, sent: Sent) -> None:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    assert "gateway_log_rows_dropped_total 0.0" in text


def test_log_store_off_answers_logs_disabled(up: Proc, tmp_path: Path) -> None:
    proc = serve(config(up, tmp_path, logs={}))
    try:
        error_of(httpx.get(proc.url + "/api/logs", timeout=10), 401)  # the token first: nothing said without it
        err = error_of(httpx.get(proc.url + "/api/logs", headers=AUTH, timeout=10), 404)
        assert err["code"] == "logs_disabled" and "logs.enabled" in err["message"]
        assert not (tmp_path / "logs.sqlite3").exists()
    finally:
        proc.stop()


def old_and_filler(path: Path) -> tuple[list[str], list[str]]:
    """Rows put in the file before the gateway starts: 100 ten days old, and 20,000 of
    the last hours (~4 MB)."""
    now = time.time()
    old = [Line(ts=now - 10 * 86400 + i, request_id=f"old-{i}", method="GET", path="/", status=200, latency_ms=1.0)
           for i in range(100)]  # fmt: skip
    filler = [
        Line(ts=now - 20_000 + i, request_id=f"fill-{i}", method="POST", path=CHAT, status=200, latency_ms=1.0,
             principal=f"vk:k{i % 40}", provider="up", model=f"m{i % 30}")
        for i in range(20_000)
    ]  # fmt: skip
    conn = connect(str(path))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_INSERT, (msgspec.structs.astuple(x) for x in old + filler))
    conn.execute("COMMIT")
    conn.close()
    return [x.request_id for x in old], [x.request_id for x in filler]


def test_log_store_retention_by_age_and_size_without_admin_token(up: Proc, tmp_path: Path) -> None:
    """No admin token: /api/logs is not served, the store works all the same. The rows
    past retention_days go at start-up; then the oldest, until the file is under max_mb."""
    path = tmp_path / "logs.sqlite3"
    old, filler = old_and_filler(path)
    assert path.stat().st_size > 3 * 2**20
    logs_cfg = {"enabled": True, "path": str(path), "retention_days": 1, "max_mb": 1, "flush_s": 0.05}
    proc = serve(config(up, tmp_path, admin=False, logs=logs_cfg), workers=2)
    try:
        err = error_of(httpx.get(proc.url + "/api/logs", headers=AUTH, timeout=10), 404)
        assert err["code"] == "unknown_url"
        r = httpx.post(proc.url + CHAT, json=chat("up/gpt-a"), headers={"x-request-id": "after-start"}, timeout=20)
        assert r.status_code == 200

        def stored() -> list[str]:
            conn = sqlite3.connect(path)
            try:
                return [row[0] for row in conn.execute("SELECT request_id FROM requests ORDER BY ts, rowid")]
            finally:
                conn.close()

        deadline = time.monotonic() + 20
        while path.stat().st_size > 2**20 or "after-start" not in stored():
            assert time.monotonic() < deadline, (path.stat().st_size, len(stored()))
            time.sleep(0.1)
        ids = stored()
        assert not set(old) & set(ids)  # past retention_days
        kept = [i for i in ids if i.startswith("fill-")]
        assert 0 < len(kept) < len(filler) and kept == filler[-len(kept) :]  # the newest stay
    finally:
        proc.stop()
