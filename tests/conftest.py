"""Real servers on 127.0.0.1: a ``gateway mock`` upstream process and a gateway
process in front of it, started once per session and reached over real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A gateway CLI process, its port and its log. ``serve`` runs as one process
    (``--workers 1``) unless the test gives ``--workers`` itself."""

    def __init__(self, args: list[str], *, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        if "serve" in args and "--workers" not in args:
            at = args.index("serve") + 1
            args = [*args[:at], "--workers", "1", *args[at:]]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        # Text log lines unless a test asks otherwise: tests read the access log's JSON lines
        # out of the same file (stdout and stderr together).
        full_env = {**os.environ, "GATEWAY_LOG_FORMAT": "text", **(env or {})}
        with log.open("wb") as out:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "gateway", *args], stdout=out, stderr=subprocess.STDOUT, env=full_env
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{args} exited with {self.p.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{args} did not become healthy:\n{log.read_text()}")

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_mock(d: Path, *args: str) -> Proc:
    """A ``gateway mock`` process (``args``: its flags, e.g. ``--api-key K --record 50``)."""
    port = free_port()
    return Proc(["mock", "--port", str(port), *args], port=port, log=d / "mock.log")


@pytest.fixture(scope="session")
def plain_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A ``gateway mock`` with no key and no record, shared by every module that needs
    only its answers."""
    proc = start_mock(tmp_path_factory.mktemp("plain-up"))
    yield proc
    proc.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration runs real servers: marked ``integration``
    (``pytest -m "not integration"`` runs the unit tests alone)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """``gateway mock`` as a separate OpenAI-compatible server that records requests."""
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "mock.log"
    proc = Proc(["mock", "--port", str(port), "--api-key", UPSTREAM_KEY, "--record", "50"], port=port, log=log)
    yield proc
    proc.stop()


def gateway_config(upstream: Proc, *, client: str = "aiohttp") -> dict[str, object]:
    config = _gateway_config(upstream)
    for provider in config["providers"].values():  # type: ignore[attr-defined]
        if provider.get("dialect", "openai") == "openai":
            provider["client"] = client
    return config


def _gateway_config(upstream: Proc) -> dict[str, Any]:
    up = f"{upstream.url}/v1"
    return {
        "server": {"max_body_bytes": 64 * 1024},
        "default_provider": "up",
        "aliases": {"fast": "up/gpt-fast"},
        "providers": {
            "up": {"dialect": "openai", "base_url": up, "keys": [{"value": "env.TEST_UPSTREAM_KEY"}]},
            "mock": {"dialect": "mock"},
            "badkey": {"dialect": "openai", "base_url": up, "keys": [{"value": "sk-wrong-key-abcdefgh"}]},
            "down": {"dialect": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
            "nodns": {"dialect": "openai", "base_url": "http://no-such-host.invalid/v1"},
            # Priced as OpenAI's models (the upstream is the mock, the prices are real).
            "priced": {"base_url": up, "keys": [{"value": "env.TEST_UPSTREAM_KEY"}], "pricing_provider": "openai"},
            # Always counts streams itself, as for a server that reports no usage.
            "counting": {"base_url": up, "keys": [{"value": "env.TEST_UPSTREAM_KEY"}], "stream_usage": "count"},
            # Default stream_usage "auto": trusts the upstream until it sends no usage.
            "learner": {"base_url": up, "keys": [{"value": "env.TEST_UPSTREAM_KEY"}]},
            # A self-hosted model priced in config.
            "selfhosted": {
                "base_url": up,
                "keys": [{"value": "env.TEST_UPSTREAM_KEY"}],
                "prices": {"my-model": {"input_mtok": 1.0, "output_mtok": 2.0, "request_kcount": 0.5}},
            },
            "slow": {
                "dialect": "openai",
                "base_url": up,
                "keys": [{"value": "env.TEST_UPSTREAM_KEY"}],
                "timeouts": {"request_s": 0.5, "stream_idle_s": 0.5},
            },
        },
    }


@pytest.fixture(scope="session", params=["aiohttp", "pool"])
def gateway(upstream: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    """The gateway under test, in front of ``upstream``, from a JSON config file; once
    with each upstream client (aiohttp's ClientSession, the gateway's own pool)."""
    d = tmp_path_factory.mktemp(f"gateway-{request.param}")
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps(gateway_config(upstream, client=request.param)))
    port = free_port()
    proc = Proc(
        ["serve", "--config", str(cfg), "--port", str(port)],
        port=port,
        log=d / "gateway.log",
        env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )
    yield proc
    proc.stop()
    # Provider keys never reach the log.
    assert UPSTREAM_KEY not in proc.log.read_text()


def serve_config(
    config: dict[str, Any],
    d: Path,
    *,
    name: str = "gateway",
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Proc:
    """A gateway process serving ``config`` (written as JSON into ``d``)."""
    path = d / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    return Proc(["serve", "--config", str(path), "--port", str(port), *args], port=port, log=d / f"{name}.log", env=env)


@pytest.fixture(scope="session")
def faulty() -> Iterator[Any]:
    """The suite's own fault-injecting upstream (``tests.faulty``), shared by the session:
    each test module registers its scenarios under names of its own."""
    from tests.faulty import FaultyUpstream

    up = FaultyUpstream()
    yield up
    up.stop()


@pytest.fixture
def received(upstream: Proc) -> Callable[[], list[dict[str, Any]]]:
    """Clears the upstream's record; the returned function reads what it received since."""
    httpx.delete(upstream.url + "/mock/requests").raise_for_status()

    def read() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(upstream.url + "/mock/requests").json()
        return data

    return read


@pytest.fixture(scope="session")
def unrouted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway with no default provider (YAML config): bare and unknown models are errors."""
    d = tmp_path_factory.mktemp("unrouted")
    cfg = d / "gateway.yaml"
    cfg.write_text("providers:\n  mock:\n    dialect: mock\n")
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    yield proc
    proc.stop()


def metric(proc: Proc, name: str, **labels: str) -> float:
    """A sample from the gateway's /metrics, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(proc.url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


_SDK_CLIENTS: dict[str, Any] = {}


def sdk_client(base_url: str) -> Any:
    """One openai.OpenAI client per base URL, closed at the end of the session (an
    unclosed client's sockets would surface as ResourceWarnings in later tests)."""
    import openai

    client = _SDK_CLIENTS.get(base_url)
    if client is None:
        client = _SDK_CLIENTS[base_url] = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=20)
    return client


@pytest.fixture(scope="session", autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    for client in _SDK_CLIENTS.values():
        client.close()
    _SDK_CLIENTS.clear()


# The state store's tests run against a real redis-server: started here, never mocked.

REDIS_START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """The redis-server executable; installed with apt-get when missing. Never a skip:
    CI must run the Redis tests, so a machine without Redis fails them, saying why."""
    import shutil

    path = shutil.which("redis-server")
    if path is None:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "redis-server"]):
            subprocess.run([*sudo, *cmd], capture_output=True, timeout=600, check=False)
        path = shutil.which("redis-server")
    if path is None:
        pytest.fail(
            "redis-server is not on PATH and `apt-get install -y redis-server` did not install it; "
            "install Redis (>= 7) to run the state store's tests",
            pytrace=False,
        )
    return path


class RedisServer:
    """A redis-server on 127.0.0.1 without persistence, in its own directory; it can be
    stopped, started again on the same port (empty), paused and resumed."""

    def __init__(self, directory: Path) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.p: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        with (self.directory / "redis.log").open("ab") as log:
            self.p = subprocess.Popen(args, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.p.returncode}:\n{self.log()}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING:\n{self.log()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        return (self.directory / "redis.log").read_text(errors="replace")

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server)."""
        import signal

        assert self.p is not None
        self.p.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        assert self.p is not None
        self.p.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        import signal

        p, self.p = self.p, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server shared by the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()
