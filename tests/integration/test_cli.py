"""The command line: the embedded default from the environment, config errors, help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Proc, free_port, sdk_client


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30, env=env)


def test_cli_default_serves_mock_with_no_config(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        ["serve", "--port", str(port)],
        port=port,
        log=tmp_path / "gw.log",
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )
    try:
        sdk = sdk_client(proc.url + "/v1")
        c = sdk.chat.completions.create(model="mock/mock-chat", messages=[{"role": "user", "content": "hi"}])
        assert c.choices[0].message.content
        # No fake answers: a bare or mistyped model is not the mock's (OpenAI's own 404).
        import openai

        for model in ("gpt-4o", "opneai/gpt-4o"):
            with pytest.raises(openai.NotFoundError) as exc:
                sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            err = exc.value.body
            assert isinstance(err, dict) and err["code"] == "model_not_found", err
            assert "configured providers: mock" in err["message"] and "OPENAI_BASE_URL" in err["message"]
        assert {m.id for m in sdk.models.list()} == {"mock/mock-chat", "mock/mock-instruct"}
    finally:
        proc.stop()


def test_cli_openai_provider_from_sdk_environment(upstream: Proc, tmp_path: Path) -> None:
    """OPENAI_API_KEY and OPENAI_BASE_URL put the gateway in front of any compatible server."""
    port = free_port()
    env = {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": upstream.url + "/v1"}
    proc = Proc(["serve", "--port", str(port)], port=port, log=tmp_path / "gw.log", env=env)
    try:
        sdk = sdk_client(proc.url + "/v1")
        c = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        extra = (c.model_extra or {})["extra_fields"]
        assert (extra["provider"], c.model) == ("openai", "gpt-4o-mini")
        # Behind a custom base URL, OpenAI's model names are priced as OpenAI prices them.
        cost = (c.usage.model_extra or {})["cost"] if c.usage else None
        assert cost is not None and cost["total_cost"] > 0, c.usage
        c = sdk.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert c.model == "gpt-4o"
        # A model OpenAI does not list stays unpriced: no cost, never a made-up one.
        c = sdk.chat.completions.create(
            model="meta-llama/Llama-3.1-8B-Instruct", messages=[{"role": "user", "content": "hi"}]
        )
        assert c.usage is not None and "cost" not in (c.usage.model_extra or {})
        assert "openai/mock-chat" in {m.id for m in sdk.models.list()}
        assert UPSTREAM_KEY not in proc.log.read_text()
    finally:
        proc.stop()


def test_cli_config_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[providers.up]\nbase_url = "http://127.0.0.1:1/v1"\ntimeout = 3\n')
    for args in (["check", str(cfg)], ["serve", "--config", str(cfg)]):
        r = run(*args)
        assert r.returncode == 1
        assert "timeout" in r.stderr and str(cfg) in r.stderr and "Traceback" not in r.stderr


def test_cli_config_missing_env_var(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.json"
    cfg.write_text('{"providers":{"up":{"base_url":"http://x/v1","keys":[{"value":"env.GATEWAY_TEST_UNSET_VAR"}]}}}')
    r = run("check", str(cfg))  # reported; the file itself is fine
    assert r.returncode == 0 and "GATEWAY_TEST_UNSET_VAR" in r.stderr and "to set before serving" in r.stderr
    r = run("check", "--strict", str(cfg))
    assert r.returncode == 1 and "GATEWAY_TEST_UNSET_VAR" in r.stderr
    r = run("serve", "--config", str(cfg))
    assert r.returncode == 1 and "GATEWAY_TEST_UNSET_VAR" in r.stderr


def test_cli_check_accepts_example_config() -> None:
    example = Path(__file__).parents[2] / "deploy" / "gateway.example.yaml"
    r = run(
        "check",
        str(example),
        env={"OPENAI_API_KEY": "sk-test", "GROQ_API_KEY": "gsk-test", "OPENAI_BATCH_KEY": "sk-b", "PATH": ""},
    )
    assert r.returncode == 0, r.stderr


def test_cli_port_in_use_is_a_clear_error(gateway: Proc) -> None:
    r = run("serve", "--port", str(gateway.port))
    assert r.returncode == 1 and "cannot listen" in r.stderr and "Traceback" not in r.stderr


def test_cli_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(["serve", "--port", str(port)], port=port, log=tmp_path / "gw.log")
    proc.p.terminate()
    assert proc.p.wait(10) == 0
    assert "gateway stopping" in proc.log.read_text()
    try:
        httpx.get(proc.url + "/health", timeout=1)
        raise AssertionError("still listening")
    except httpx.ConnectError:
        pass


def test_cli_mock_fault_flags(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        ["mock", "--port", str(port), "--error-rate", "1", "--error-status", "503"],
        port=port,
        log=tmp_path / "mock.log",
    )
    try:
        r = httpx.post(proc.url + "/v1/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 503 and r.json()["error"]["code"] == "mock_injected"
    finally:
        proc.stop()
    port = free_port()
    proc = Proc(
        ["mock", "--port", str(port), "--reset-rate", "1", "--tokens", "20", "--itl-ms", "1"],
        port=port,
        log=tmp_path / "mock2.log",
    )
    try:
        body = {"model": "m", "messages": [], "stream": True}
        frames: list[str] = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", proc.url + "/v1/chat/completions", json=body) as r,
        ):
            assert r.status_code == 200
            frames.extend(line for line in r.iter_lines() if line)
        # Cut (the reset point is drawn in [0, tokens), so possibly before any frame),
        # never completed.
        assert "data: [DONE]" not in frames and len(frames) < 22
    finally:
        proc.stop()


def test_cli_mock_rejects_invalid_options() -> None:
    r = run("mock", "--error-rate", "2")
    assert r.returncode == 2 and "error_rate" in r.stderr and "Traceback" not in r.stderr


def test_cli_check_passes_the_example_with_no_environment() -> None:
    example = Path(__file__).parents[2] / "deploy" / "gateway.example.yaml"
    r = run("check", str(example), env={"PATH": ""})
    assert r.returncode == 0, r.stderr
    for var in ("OPENAI_API_KEY", "GROQ_API_KEY", "GATEWAY_ADMIN_TOKEN", "TEAM_A_KEY"):
        assert f"environment variable {var} is not set" in r.stderr
    assert "warning" not in r.stderr  # the example writes no secret into the file


def test_cli_check_reports_every_problem_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "server:\n  port: 99999\n  colour: blue\n"
        "default_provider: nope\n"
        "providers:\n"
        "  groq:\n    base_url: ftp://groq\n    timeouts: {request_s: soon}\n"
        "  vllm:\n    base_url: http://127.0.0.1:8000/v1\n    keys: [{value: env.GATEWAY_TEST_UNSET_A}, {}]\n"
    )
    r = run("check", str(cfg), env={"PATH": ""})
    assert r.returncode == 1
    for named in ("server.port", "server.colour: unknown key", "providers.groq.timeouts.request_s", "keys[1].value"):
        assert named in r.stderr, (named, r.stderr)
    assert "$.providers" not in r.stderr and "Traceback" not in r.stderr
    # Once the types are right, the next layer: every semantic problem at once.
    cfg.write_text(
        "default_provider: nope\n"
        "aliases: {fast: other/model}\n"
        "providers:\n"
        "  groq:\n    base_url: ftp://groq\n"
        "  vllm:\n    base_url: http://127.0.0.1:8000/v1\n    keys: [{value: env.GATEWAY_TEST_UNSET_A}]\n"
    )
    r = run("check", "--strict", str(cfg), env={"PATH": ""})
    assert r.returncode == 1
    for named in ("providers.groq.base_url", "default_provider", "aliases.fast", "GATEWAY_TEST_UNSET_A"):
        assert named in r.stderr, (named, r.stderr)
    r = run("serve", "--config", str(cfg), env={"PATH": ""})
    assert r.returncode == 1 and "4 problems" in r.stderr


def test_cli_check_warns_on_literal_secrets_and_no_providers(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "providers:\n  up:\n    base_url: http://127.0.0.1:1/v1\n    keys: [{value: sk-literal-0123456789}]\n"
    )
    r = run("check", str(cfg))
    assert r.returncode == 0
    assert "warning: " in r.stderr and "providers.up.keys[0].value: a secret written in the file" in r.stderr
    assert "sk-literal-0123456789" not in r.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("server: {port: 8080}\n")
    r = run("check", str(empty))
    assert r.returncode == 0 and "providers: none configured" in r.stderr
