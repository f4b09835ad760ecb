"""Processes under load: how to start them pinned to a core, and how to reach them.

Every contender (the mock upstream, the floor forwarder, the gateway, the peers) is a
``Target``: a process pinned with ``taskset`` and the HTTP request shape it expects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0  # LiteLLM takes ~15 s to start on this machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """A server to load: where to send, what to send, and its process."""

    name: str
    url: str  # base, e.g. http://127.0.0.1:8080
    path: str = "/v1/chat/completions"
    model: str = "gpt-x"  # the "model" value this target routes to the mock
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0  # spawn to first healthy answer
    upstream_pid: int | None = None  # its own upstream, when not the run's shared mock

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn(
    name: str,
    argv: list[str],
    *,
    port: int,
    cpu: int | None,
    health: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Target:
    """Start ``argv`` pinned to ``cpu`` and wait until ``health`` answers 2xx."""
    pinned = ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url + health, timeout=1).is_success:
                return Target(name=name, url=url, proc=proc, startup_s=time.perf_counter() - t0)
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"{name} did not become healthy in {START_TIMEOUT_S} s; see {log}")


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
