"""Peers to compare against: LiteLLM proxy (PyPI) and Portkey gateway (npm), routed to the mock.

Each peer installs once into a throwaway directory and starts as a ``bench.targets.Target``
whose ``url + path``, ``headers`` and ``model`` take a plain OpenAI chat request to the mock.

    .venv/bin/python -m bench.compare.peers install   # both, idempotent (a stamp file per peer)
    .venv/bin/python -m bench.compare.peers check     # mock + each peer, one unary and one stream
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.targets import Target, free_port, spawn

PEERS_ROOT = Path("/tmp/gateway-bench-peers")

# 1.104.6 and later require certifi>=2026.10.19, which is not on PyPI (yet): 1.104.5 is the newest that installs.
LITELLM_SPEC = "litellm[proxy]==1.104.5"
LITELLM_ENV = {
    "LITELLM_LOG": "ERROR",
    # Without these it fetches JSON from raw.githubusercontent.com (the model cost map at import, 3 tries).
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    # 1.104.5 refuses to start without a master key ("UnsafeMasterKeyError") unless told this.
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
}

# The published 1.15.2 resolves @hono/node-server 1.19 / hono 4.13 today, and then every streaming
# request fails with a 500 ("TypeError: immutable" appending a header): pin what it was built with.
PORTKEY_OVERRIDES = {"@hono/node-server": "1.13.5", "hono": "4.9.7"}
PORTKEY_PACKAGE = {
    "name": "gateway-bench-portkey",
    "private": True,
    "dependencies": {"@portkey-ai/gateway": "1.15.2"},
    "overrides": PORTKEY_OVERRIDES,
}


def _stamped(root: Path, stamp: str) -> bool:
    f = root / ".installed"
    return f.exists() and f.read_text() == stamp


def install_litellm(root: Path = PEERS_ROOT / "litellm") -> Path:
    """A venv with LiteLLM's proxy in ``root``; returns its ``litellm`` script."""
    exe = root / "venv" / "bin" / "litellm"
    if not (_stamped(root, LITELLM_SPEC) and exe.exists()):
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(root / "venv")], check=True)
        pip = [str(root / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", LITELLM_SPEC]
        subprocess.run(pip, check=True)
        (root / ".installed").write_text(LITELLM_SPEC)
    return exe


def install_portkey(root: Path = PEERS_ROOT / "portkey") -> Path:
    """Portkey's gateway in ``root/node_modules`` (dependencies pinned); returns its start script."""
    stamp = json.dumps(PORTKEY_PACKAGE, indent=2)
    pkg = root / "node_modules" / "@portkey-ai" / "gateway"
    if not (_stamped(root, stamp) and pkg.exists()):
        root.mkdir(parents=True, exist_ok=True)
        (root / "package.json").write_text(stamp)
        npm = shutil.which("npm") or "npm"
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=root, check=True)
        for name, want in PORTKEY_OVERRIDES.items():
            got = json.loads((root / "node_modules" / name / "package.json").read_text())["version"]
            if got != want:
                raise RuntimeError(f"npm installed {name}@{got}, not {want}")
        (root / ".installed").write_text(stamp)
    bin_ = json.loads((pkg / "package.json").read_text())["bin"]  # "build/start-server.js"
    return pkg / (bin_ if isinstance(bin_, str) else next(iter(bin_.values())))


def start_litellm(
    *, port: int, upstream_url: str, cpu: int | None = None, root: Path = PEERS_ROOT / "litellm"
) -> Target:
    """LiteLLM proxy (uvicorn, one worker, no database, no master key) routing ``gpt-x`` to the mock."""
    exe = install_litellm(root)
    config = root / f"config-{port}.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-x\n"
        "    litellm_params:\n"
        "      model: openai/gpt-x\n"
        f"      api_base: {upstream_url.rstrip('/')}/v1\n"
        "      api_key: sk-anything\n"
        "litellm_settings:\n"
        "  telemetry: false\n"  # a no-op since telemetry was removed; kept for older versions
    )
    argv = [str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    log = root / f"litellm-{port}.log"
    t = spawn("litellm", argv, port=port, cpu=cpu, health="/health/liveliness", log=log, env=LITELLM_ENV, cwd=root)
    t.model, t.path = "gpt-x", "/v1/chat/completions"
    return t


def start_portkey(
    *, port: int, upstream_url: str, cpu: int | None = None, root: Path = PEERS_ROOT / "portkey"
) -> Target:
    """Portkey gateway on node; the provider and the mock's address travel in headers."""
    script = install_portkey(root)
    # Only "--port=N" is read ("--port N" and $PORT are ignored: it would listen on 8787).
    # --headless skips the web UI and its /log/stream.
    argv = [shutil.which("node") or "node", str(script), f"--port={port}", "--headless"]
    t = spawn("portkey", argv, port=port, cpu=cpu, health="/", log=root / f"portkey-{port}.log", cwd=root)
    t.model, t.path = "gpt-x", "/v1/chat/completions"
    t.headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{upstream_url.rstrip('/')}/v1",
        "Authorization": "Bearer sk-anything",
    }
    return t


def _probe(t: Target) -> None:
    """One unary and one streaming chat completion through ``t``; raises if either is wrong."""
    body = {"model": t.model, "messages": [{"role": "user", "content": "hello"}]}
    r = httpx.post(t.url + t.path, json=body, headers=t.headers, timeout=30)
    r.raise_for_status()
    content = r.json()["choices"][0]["message"]["content"]
    if not isinstance(content, str) or not content:
        raise RuntimeError(f"{t.name}: no choices[0].message.content in {r.text[:300]}")
    with httpx.stream("POST", t.url + t.path, json={**body, "stream": True}, headers=t.headers, timeout=30) as s:
        s.raise_for_status()
        text = s.read().decode()
    if not text.rstrip().endswith("data: [DONE]"):
        raise RuntimeError(f"{t.name}: stream does not end with 'data: [DONE]': ...{text[-300:]!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["install", "check"])
    p.add_argument("--root", type=Path, default=PEERS_ROOT, help=f"throwaway directory (default {PEERS_ROOT})")
    p.add_argument("--cpu", type=int, default=None, help="pin each peer to this core (default: no pinning)")
    args = p.parse_args()
    root: Path = args.root
    if args.command == "install":
        for name, install in (("litellm", install_litellm), ("portkey", install_portkey)):
            t0 = time.perf_counter()
            print(f"{name}: {install(root / name)} ({time.perf_counter() - t0:.1f} s)", flush=True)
        return
    root.mkdir(parents=True, exist_ok=True)
    started: list[Target] = []
    failed = False
    try:
        mock_port = free_port()
        gateway = str(Path(sys.executable).parent / "gateway")
        mock = spawn(
            "mock",
            [gateway, "mock", "--port", str(mock_port)],
            port=mock_port,
            cpu=None,
            health="/health",
            log=root / f"mock-{mock_port}.log",
        )
        started.append(mock)
        for start in (start_litellm, start_portkey):
            try:
                t = start(port=free_port(), upstream_url=mock.url, cpu=args.cpu, root=root / start.__name__[6:])
                started.append(t)
                _probe(t)
                print(f"{t.name}: ok, started in {t.startup_s:.2f} s, {t.url}{t.path}", flush=True)
            except Exception as e:  # report every peer, then fail
                failed = True
                print(f"{start.__name__[6:]}: FAILED: {e}", flush=True)
    finally:
        for t in reversed(started):
            t.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
