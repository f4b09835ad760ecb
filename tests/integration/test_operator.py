"""What an operator reaches for first: the listen address from the environment or make,
the log level where it is typed, help that lists what is honoured, health per provider,
and /metrics as Prometheus and OpenMetrics scrapers expect it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from tests.conftest import Proc, free_port

ROOT = Path(__file__).resolve().parents[2]
CHAT = '{"model":"%s","messages":[{"role":"user","content":"hi"}]}'


def test_listen_address_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        ["serve"], port=port, log=tmp_path / "gw.log", env={"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}
    )
    try:
        assert httpx.get(proc.url + "/health").json() == {"status": "ok"}
        assert f"http://127.0.0.1:{port}" in proc.log.read_text()
    finally:
        proc.stop()


def test_make_run_passes_host_and_port() -> None:
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "run", "HOST=0.0.0.0", "PORT=9191"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert re.search(r"gateway serve --host 0\.0\.0\.0 +--port 9191", out), out
    plain = subprocess.run(["make", "-n", "-C", str(ROOT), "run"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"gateway serve\s*$", plain, re.M), plain


def _serve(port: int, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(port), *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_a_second_gateway_on_a_port_in_use_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    first = Proc(["serve", "--workers", "2", "--port", str(port)], port=port, log=tmp_path / "first.log")
    try:
        for workers in ("2", "1"):
            r = _serve(port, "--workers", workers)
            assert r.returncode == 1, (workers, r.stderr)
            assert "cannot listen" in r.stderr and "server.reuse_port" in r.stderr and "Traceback" not in r.stderr
        # Asked to join, it does (and serves next to the first).
        cfg = tmp_path / "join.yaml"
        cfg.write_text("server:\n  reuse_port: true\nproviders:\n  mock:\n    dialect: mock\n")
        second = Proc(
            ["serve", "--workers", "2", "--port", str(port), "--config", str(cfg)],
            port=port,
            log=tmp_path / "second.log",
        )
        second.stop()
        assert first.alive()
    finally:
        first.stop()


def test_log_level_after_the_subcommand(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--log-level", "WARNING"], port=port, log=tmp_path / "gw.log")
    try:
        assert httpx.get(proc.url + "/health").status_code == 200
        assert "gateway listening" not in proc.log.read_text()  # an INFO line
    finally:
        proc.stop()


def _help(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_serve_help_lists_every_environment_variable_read() -> None:
    text = _help("serve")
    config_src = (ROOT / "gateway" / "config" / "load.py").read_text()  # the only env reader
    read = set(re.findall(r'"((?:GATEWAY|OPENAI|ANTHROPIC|GEMINI)_[A-Z_]+)"', config_src))
    assert len(read) >= 8, f"found too few environment variables in gateway/config/load.py: {read}"
    read |= {f"{p}_{v}" for p in ("OPENAI", "ANTHROPIC", "GEMINI") for v in ("API_KEY", "BASE_URL")}
    missing = sorted(v for v in read if v not in text)
    assert not missing, f"serve --help does not list {missing}"
    for route in ("/v1/chat/completions", "/anthropic/v1/messages", "/api/keys", "/api/logs", "/health", "/metrics"):
        assert route in text


def test_mock_help_lists_its_routes() -> None:
    from gateway.config import MockConfig
    from gateway.server.mock import MockServer

    text = _help("mock")
    routes = MockServer(MockConfig(), api_key=None, record=0).routes()
    assert routes
    for path in routes:
        assert path.removeprefix("/v1") in text, path
    assert ":generateContent" in text and ":streamGenerateContent" in text


def test_head_health(gateway: Proc) -> None:
    r = httpx.head(gateway.url + "/health")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"].startswith("application/json")


def test_health_reports_providers(gateway: Proc) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}  # unchanged without the query
    assert httpx.post(gateway.url + "/v1/chat/completions", content=CHAT % "up/gpt-x").status_code == 200
    assert httpx.post(gateway.url + "/v1/chat/completions", content=CHAT % "badkey/gpt-x").status_code == 401
    report = httpx.get(gateway.url + "/health?providers=1").json()
    assert report["status"] == "ok"
    up, bad = report["providers"]["up"], report["providers"]["badkey"]
    assert up["dialect"] == "openai" and up["last_success"].endswith("Z")
    assert bad["last_failure"].endswith("Z") and bad["last_failure_status"] == 401
    assert bad["keys"][0]["cooling_down"] is True and bad["keys"][0]["cooldown_remaining_s"] > 0
    assert report["providers"]["mock"]["keys"] == [
        {"name": "default", "cooling_down": False, "cooldown_remaining_s": 0.0}
    ]
    # No key value anywhere in it.
    assert "sk-wrong-key" not in httpx.get(gateway.url + "/health?providers=1").text


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_metrics_has_process_and_build_info(gateway: Proc) -> None:
    r = httpx.get(gateway.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    got = _families(r.text)
    (rss,) = got["process_resident_memory_bytes"]
    assert rss[1] > 10_000_000
    assert got["process_open_fds"][0][1] > 0
    assert got["process_cpu_seconds_total"][0][1] > 0
    (build,) = got["gateway_build_info"]
    assert build[0]["version"] == __version__ and build[1] == 1


def test_metrics_negotiates_openmetrics(gateway: Proc) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    r = httpx.get(gateway.url + "/metrics", headers={"Accept": accept})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    assert "gateway_requests_total" in r.text


def _json_lines(path: Path) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_json_log_format_is_the_default_off_a_terminal(tmp_path: Path) -> None:
    port = free_port()
    # stdout is a file here, not a terminal: JSON, with no format given.
    proc = Proc(["serve", "--port", str(port)], port=port, log=tmp_path / "gw.log", env={"GATEWAY_LOG_FORMAT": ""})
    try:
        httpx.post(proc.url + "/v1/chat/completions", content=CHAT % "nobody/x")
        httpx.get(proc.url + "/health")
    finally:
        proc.stop()
    text = proc.log.read_text()
    lines = _json_lines(proc.log)
    assert len(lines) == len(text.splitlines()), "a line that is not JSON:\n" + text
    app = [x for x in lines if "level" in x]
    access = [x for x in lines if "request_id" in x]
    assert any(x["level"] == "INFO" and "gateway listening" in str(x["message"]) for x in app)
    assert all(set(x) >= {"ts", "level", "logger", "message"} for x in app)
    assert {x["status"] for x in access} >= {404, 200}


def test_json_log_lines_of_workers_say_who_speaks(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        ["serve", "--workers", "2", "--port", str(port), "--log-format", "json"], port=port, log=tmp_path / "gw.log"
    )
    proc.stop()
    processes = {str(x.get("process", "")).split(" ")[0] for x in _json_lines(proc.log) if "level" in x}
    assert {"supervisor", "worker"} <= processes, proc.log.read_text()


def test_text_log_format(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--log-format", "text"], port=port, log=tmp_path / "gw.log")
    proc.stop()
    assert re.search(r"^\S+ \S+ INFO gateway: gateway listening", proc.log.read_text(), re.M)
