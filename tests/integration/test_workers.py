"""Processes: ``--workers N`` under a supervisor (SO_REUSEPORT), a worker killed under
load and replaced, the graceful drain on SIGTERM, config reloads on SIGHUP, limits and
async jobs shared by the workers without Redis, and a supervisor that gives up.

Which worker serves a connection is read from /proc: the worker process that holds the
server side of the connection's socket. No timing assertion: every wait is a bounded loop."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Proc, free_port, gateway_config

ENV = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
# Generous: a worker restarts in about a second, but this machine is small and shared.
COMES_BACK_S = 60.0
VK_LIMITED = "sk-bf-limited-0123456789abcdef"
VK_JOBS = "sk-bf-jobs-0123456789abcdef"


def until(check: Callable[[], Any], *, within_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s} s")
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


def _tcp_rows() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            rows += [line.split() for line in f.readlines()[1:]]
    return rows


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _owner(inodes: set[str], pids: set[int]) -> dict[str, int]:
    found = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found[link[8:-1]] = pid
    return found


def listening(port: int, pids: set[int]) -> set[int]:
    """Which of ``pids`` listen on ``port``."""
    inodes = {r[9] for r in _tcp_rows() if r[3] == "0A" and _port(r[1]) == port}
    return set(_owner(inodes, pids).values())


def server_of(conn: http.client.HTTPConnection, port: int, pids: set[int]) -> int | None:
    """The worker holding the server side of ``conn`` (after a first answer on it)."""
    assert conn.sock is not None
    mine = conn.sock.getsockname()[1]
    inodes = {r[9] for r in _tcp_rows() if _port(r[1]) == port and _port(r[2]) == mine and r[3] != "0A"}
    found = _owner(inodes, pids)
    return next(iter(found.values()), None)


def workers_of(proc: Proc, n: int) -> set[int]:
    """The supervisor's worker processes, once ``n`` of them listen."""
    pid = proc.p.pid

    def ready() -> set[int] | None:
        kids = children(pid)
        serving = listening(proc.port, kids)
        return serving if len(serving) == n else None

    found: set[int] = until(ready, within_s=COMES_BACK_S, what=f"{n} workers listening")
    return found


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def start(tmp_path: Path, cfg: dict[str, Any], *, workers: int, name: str = "gateway") -> Proc:
    path = write_config(tmp_path / f"{name}.json", cfg)
    port = free_port()
    args = ["serve", "--config", str(path), "--port", str(port), "--workers", str(workers)]
    return Proc(args, port=port, log=tmp_path / f"{name}.log", env=ENV)


def stop(proc: Proc) -> None:
    """SIGTERM, then SIGKILL to the supervisor and whatever workers it left."""
    kids = children(proc.p.pid)
    proc.stop()
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def config(upstream: Proc) -> dict[str, Any]:
    return gateway_config(upstream, client="pool")


def chat(**extra: Any) -> bytes:
    return json.dumps(
        {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "mock": {"tokens": 4}, **extra}
    ).encode()


def connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    return conn


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    return r.status, r.read()


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


# (a) A worker killed under load


class Client(threading.Thread):
    """Requests in a loop on one keep-alive connection, a new one after a failure; each
    result recorded with the worker that held the connection (None: it failed before
    its first answer, so no worker could be read)."""

    def __init__(self, port: int, pids: Callable[[], set[int]], want: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.pids, self.want, self.halt = port, pids, want, stop
        self.results: list[tuple[int | None, bool, str]] = []
        self.first_owner: int | None = None

    def _open(self, *, want: int | None) -> tuple[http.client.HTTPConnection, int | None]:
        """A connection (to worker ``want`` when given: reconnects until the kernel picks it)."""
        for _ in range(200):
            conn = connect(self.port)
            status, _ = get(conn, "/health")
            owner = server_of(conn, self.port, self.pids())
            if status == 200 and (want is None or owner == want):
                return conn, owner
            conn.close()
        raise AssertionError(f"no connection to worker {want}")

    def run(self) -> None:
        conn, owner = self._open(want=self.want)
        self.first_owner = owner
        while not self.halt.is_set():
            if conn is None:
                try:
                    conn, owner = connect(self.port), None
                except OSError as e:
                    self.results.append((None, False, f"connect: {e}"))
                    time.sleep(0.01)
                    continue
            try:
                status, _ = post(conn, "/v1/chat/completions", chat())
                if owner is None:
                    owner = server_of(conn, self.port, self.pids())
                self.results.append((owner, status == 200, str(status)))
            except (OSError, http.client.HTTPException) as e:
                self.results.append((owner, False, repr(e)))
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def test_workers_killed_worker_loses_only_its_connections_and_comes_back(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    proc = start(tmp_path, config, workers=2)
    try:
        first = workers_of(proc, 2)
        a, b = sorted(first)
        halt = threading.Event()
        pids = lambda: children(proc.p.pid)  # noqa: E731
        clients = [Client(proc.port, pids, want=(a, b)[i % 2], stop=halt) for i in range(4)]
        for c in clients:
            c.start()
        until(lambda: all(len(c.results) >= 20 for c in clients), what="load running")
        victim, survivor = a, b
        os.kill(victim, signal.SIGKILL)
        now = until(lambda: workers_of(proc, 2) - first, within_s=COMES_BACK_S, what="a new worker")
        (replacement,) = now
        served_before = sum(len(c.results) for c in clients)
        until(lambda: sum(len(c.results) for c in clients) > served_before + 40, what="load after the restart")
        halt.set()
        for c in clients:
            c.join(30)
        results = [r for c in clients for r in c.results]
        failed = [r for r in results if not r[1]]
        # Only the killed worker's connections failed (or connections it had not yet
        # answered on: its accept queue died with it).
        assert all(owner in (victim, None) for owner, _, _ in failed), failed
        assert any(owner == victim for owner, _, _ in failed), "the kill cut no connection"
        assert all(ok for owner, ok, _ in results if owner == survivor)
        assert sum(1 for owner, ok, _ in results if owner == survivor and ok) > 40
        # The replacement serves too: every new connection is answered.
        owners = set()
        for _ in range(40):
            conn = connect(proc.port)
            assert post(conn, "/v1/chat/completions", chat())[0] == 200
            owners.add(server_of(conn, proc.port, {survivor, replacement}))
            conn.close()
            if owners == {survivor, replacement}:
                break
        assert owners == {survivor, replacement}
        log = proc.log.read_text()
        assert f"worker {victim} exited (signal SIGKILL)" in log and f"[worker {replacement}]" in log
    finally:
        stop(proc)


# (b) SIGTERM: the graceful drain


def stream_until_done(url: str, results: list[list[str]], started: threading.Barrier) -> None:
    lines: list[str] = []
    results.append(lines)
    body = {
        "model": "up/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"tokens": 40, "itl_ms": 100},
    }
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line:
                lines.append(line)
                if len(lines) == 1:
                    started.wait(30)


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_sigterm_drains_streams_then_exits(tmp_path: Path, config: dict[str, Any], workers: int) -> None:
    config["server"] = {**config["server"], "drain_delay_s": 1.5}
    proc = start(tmp_path, config, workers=workers)
    try:
        if workers > 1:
            workers_of(proc, workers)
        results: list[list[str]] = []
        started = threading.Barrier(5)
        streams = [threading.Thread(target=stream_until_done, args=(proc.url, results, started)) for _ in range(4)]
        for t in streams:
            t.start()
        started.wait(30)  # every stream has its first chunk
        proc.p.send_signal(signal.SIGTERM)
        health: list[int | str] = []

        def refused() -> bool:
            try:
                r = httpx.get(proc.url + "/health", timeout=5)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                # Refused, or (SO_REUSEPORT) accepted into the queue of a listener that
                # closed before serving it: Linux resets those.
                return True
            health.append(r.status_code if r.status_code == 200 else f"{r.status_code} {r.text}")
            return False

        until(refused, within_s=30, what="the listener closed")
        assert '503 {"status":"draining"}' in health  # while the listener still accepted
        for t in streams:
            t.join(30)
        assert len(results) == 4
        for lines in results:
            assert lines[-1] == "data: [DONE]"
            final = json.loads(lines[-2].removeprefix("data: "))
            assert final["choices"][0]["finish_reason"] == "stop" and final["extra_fields"]["provider"] == "up"
            assert len(lines) == 40 + 3  # the role chunk, one per token, the finish chunk, [DONE]
        assert proc.p.wait(30) == 0
        log = proc.log.read_text()
        assert "Traceback" not in log
    finally:
        stop(proc)


# (c) SIGHUP: reload a changed config, refuse a broken one


def models(port: int, conn: http.client.HTTPConnection | None = None) -> set[str]:
    """The models listed on ``conn``, or on a new connection."""
    c = conn or connect(port)
    try:
        status, body = get(c, "/v1/models")
        assert status == 200, body
        return {m["id"] for m in json.loads(body)["data"]}
    finally:
        if conn is None:
            c.close()


def every_connection_lists(port: int, model: str, *, present: bool = True, times: int = 10) -> bool:
    return all((model in models(port)) == present for _ in range(times))


class Stream(threading.Thread):
    """One paced stream (~2 s), its lines kept."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.lines: list[str] = []
        self.first = threading.Event()

    def run(self) -> None:
        body = {
            "model": "mock/m",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "mock": {"tokens": 20, "itl_ms": 100},
        }
        with httpx.stream("POST", self.url + "/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line:
                    self.lines.append(line)
                    self.first.set()

    def completes(self) -> None:
        self.join(30)
        assert self.lines[-1] == "data: [DONE]" and len(self.lines) == 20 + 3, self.lines[-3:]


def reload_with(proc: Proc, path: Path, content: str) -> Stream:
    """Writes the config file and sends SIGHUP while a stream is in flight."""
    stream = Stream(proc.url)
    stream.start()
    assert stream.first.wait(30)
    path.write_text(content)
    proc.p.send_signal(signal.SIGHUP)
    return stream


def logged(proc: Proc, text: str, *, count: int = 1) -> bool:
    return proc.log.read_text().count(text) >= count


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_sighup_reloads_a_changed_config_and_refuses_a_broken_one(
    tmp_path: Path, config: dict[str, Any], workers: int
) -> None:
    path = tmp_path / "gateway.json"
    proc = start(tmp_path, config, workers=workers)
    try:
        pids = workers_of(proc, workers) if workers > 1 else {proc.p.pid}
        kept = connect(proc.port)  # open across the reload: its next request sees the new config
        assert "extra/x" not in models(proc.port, kept)
        changed = {
            **config,
            "server": {**config["server"], "port": free_port()},  # needs a restart: ignored
            "providers": {**config["providers"], "extra": {"dialect": "mock", "mock": {"models": ["x"]}}},
        }
        reload_with(proc, path, json.dumps(changed)).completes()
        until(lambda: every_connection_lists(proc.port, "extra/x"), what="the new provider listed")
        assert "extra/x" in models(proc.port, kept)
        kept.close()
        until(lambda: logged(proc, "server.port changed, ignored until the gateway restarts"), what="warning")

        # Broken: not JSON; then a key that does not exist. Each refused, with its reason.
        reload_with(proc, path, '{"providers": {').completes()
        until(lambda: logged(proc, "config reload refused"), what="refusal logged")
        reload_with(proc, path, json.dumps({**changed, "providerz": {}})).completes()
        until(lambda: logged(proc, "config reload refused", count=2), what="second refusal logged")
        log = proc.log.read_text()
        refusals = [line for line in log.splitlines() if "config reload refused" in line]
        assert all(" ERROR " in line for line in refusals)
        assert "not valid JSON" in refusals[0] and "providerz" in refusals[1]
        assert every_connection_lists(proc.port, "extra/x")  # the last good config serves
        assert (children(proc.p.pid) if workers > 1 else {proc.p.pid}) == pids  # nothing restarted

        if workers > 1:
            # A worker started after the reloads serves the last good config, not the broken file.
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            until(lambda: workers_of(proc, workers) - pids, within_s=COMES_BACK_S, what="a new worker")
            assert every_connection_lists(proc.port, "extra/x", times=20)
    finally:
        stop(proc)


# (d) Limits and async jobs shared by the workers, without Redis


def test_workers_share_limits_and_jobs_without_redis(tmp_path: Path, config: dict[str, Any]) -> None:
    config["auth"] = {
        "virtual_keys": [
            {"name": "limited", "value": VK_LIMITED, "rate_limits": [{"requests": 4, "window": "1d"}]},
            {"name": "jobs", "value": VK_JOBS},
        ]
    }
    proc = start(tmp_path, config, workers=2)
    try:
        pids = workers_of(proc, 2)
        statuses: list[int] = []
        owners: set[int | None] = set()
        while len(statuses) < 10 or len(owners) < 2:  # both workers answered some
            conn = connect(proc.port)
            status, _ = post(conn, "/v1/chat/completions", chat(), {"Authorization": f"Bearer {VK_LIMITED}"})
            owners.add(server_of(conn, proc.port, pids))
            conn.close()
            statuses.append(status)
            assert len(statuses) < 200
        assert owners == pids
        assert statuses.count(200) == 4 and statuses.count(429) == len(statuses) - 4

        jobs = {"Authorization": f"Bearer {VK_JOBS}"}
        conn = connect(proc.port)
        status, body = post(conn, "/v1/async/chat/completions", chat(mock={"tokens": 4, "ttft_ms": 500}), jobs)
        conn.close()
        assert status == 202, body
        job = json.loads(body)["id"]
        answers: list[int] = []
        owners = set()
        while len(answers) < 10 or len(owners) < 2:  # polled on both workers
            conn = connect(proc.port)
            status, body = get(conn, f"/v1/async/chat/completions/{job}", jobs)
            owners.add(server_of(conn, proc.port, pids))
            conn.close()
            assert status in (200, 202), body
            answers.append(status)
            assert len(answers) < 200

        def completed() -> bool:
            r = httpx.get(f"{proc.url}/v1/async/chat/completions/{job}", headers=jobs)
            return r.status_code == 200 and r.json()["status"] == "completed"

        until(completed, what="the job completed")
    finally:
        stop(proc)


# (f) and the rest: the supervisor's own behaviour


def test_workers_port_in_use_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1
    # Refused before any worker starts.
    assert "cannot listen" in r.stderr and "Address already in use" in r.stderr and "server.reuse_port" in r.stderr
    assert "Traceback" not in r.stderr


def test_workers_stop_when_the_supervisor_dies(tmp_path: Path, config: dict[str, Any]) -> None:
    proc = start(tmp_path, config, workers=2)
    try:
        pids = workers_of(proc, 2)
        proc.p.kill()
        proc.p.wait(10)
        until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="the workers exited")
        assert logged(proc, "the supervisor is gone: stopping", count=2)
    finally:
        stop(proc)


def test_workers_port_zero_is_one_port_for_every_worker(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        found = until(
            lambda: re.search(r"gateway on http://127\.0\.0\.1:(\d+)", log.read_text()), what="the port logged"
        )
        port = int(found.group(1))
        until(lambda: len(listening(port, children(p.pid))) == 2, within_s=COMES_BACK_S, what="2 workers")
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_workers_reload_lets_the_old_configs_jobs_finish(tmp_path: Path, config: dict[str, Any]) -> None:
    """In this process: an async job runs on across a reload (the old config's jobs are
    waited for, then the old config is dropped), and is polled on the new config."""
    import asyncio

    from gateway.config import load
    from gateway.server.app import Gateway

    path = write_config(tmp_path / "gateway.json", config)

    async def main() -> None:
        gateway = Gateway(load(path, env=ENV))
        port = await gateway.start(host="127.0.0.1", port=0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                body = json.loads(chat(mock={"tokens": 4, "ttft_ms": 1000}))
                job = (await client.post("/v1/async/chat/completions", json=body)).json()["id"]
                changed = {**config, "aliases": {"quick": "mock/m"}}
                assert gateway.reload(load(write_config(path, changed), env=ENV))
                assert gateway.cfg.aliases == {"quick": "mock/m"}
                for _ in range(300):
                    r = await client.get(f"/v1/async/chat/completions/{job}")
                    if r.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                assert r.json()["status"] == "completed"
                for _ in range(300):  # the old config is let go once its job has ended
                    if not gateway._retired:
                        break
                    await asyncio.sleep(0.05)
                assert not gateway._retired
        finally:
            await gateway.stop()

    asyncio.run(main())


def test_workers_metrics_sum_every_worker(tmp_path: Path, config: dict[str, Any]) -> None:
    """prometheus-client multiprocess mode: a scrape of either worker counts the requests
    both served (each worker's files are refreshed every second: a bounded wait)."""
    from prometheus_client.parser import text_string_to_metric_families

    proc = start(tmp_path, config, workers=2)
    try:
        pids = workers_of(proc, 2)
        served: set[int] = set()
        sent = 0
        while len(served) < 2 or sent < 20:  # new connections until both workers served some
            assert sent < 400, "SO_REUSEPORT never spread the connections over both workers"
            conn = connect(proc.port)
            assert post(conn, "/v1/chat/completions", chat())[0] == 200
            worker = server_of(conn, proc.port, pids)
            if worker is not None:
                served.add(worker)
            conn.close()
            sent += 1

        def counted() -> bool:
            for _ in range(4):  # several connections: whichever worker answers the scrape
                conn = connect(proc.port)
                status, body = get(conn, "/metrics")
                conn.close()
                total = sum(
                    s.value
                    for f in text_string_to_metric_families(body.decode())
                    for s in f.samples
                    if s.name == "gateway_requests_total" and s.labels.get("route") == "/v1/chat/completions"
                )
                if status != 200 or total != sent:
                    return False
            return True

        until(counted, within_s=20, what=f"both workers' {sent} requests in every scrape")
    finally:
        stop(proc)
