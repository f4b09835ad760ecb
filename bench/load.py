"""Load runs over 127.0.0.1: the gateway against the same mock upstream hit directly,
through the floor forwarder, and (optionally) through peer gateways.

    .venv/bin/python -m bench.load                       # gateway, floor, direct (~2 min)
    .venv/bin/python -m bench.load --peers litellm,portkey
    .venv/bin/python -m bench.load --quick               # smoke run (CI): figures meaningless

Pinning, as in ../shared/reference/performance.md: the mock upstreams and the load
generator on CPU 0, the server under test alone on CPU 1. wrk drives a closed loop at each
concurrency; CPU per request is read from /proc/<pid>/stat before and after each run
(the steadiest figure on a noisy machine). Time to first chunk is measured by a client
that sends one paced streaming request at a time and stops its clock at the first byte
of the body.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.targets import Target, free_port, python_module, spawn

LOADGEN_CPU = 0
SERVER_CPU = 1
TOKENS = 20  # chunks per streamed answer
PACED_ITL_MS = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Idle RSS is read this long after start-up, once lazy start-up work (the gateway warms
# its pricing data in a thread) has settled.
IDLE_SETTLE_S = 2.0
# A 1 KB chat request, the size performance.md measures with.
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. " * 8},
    {"role": "user", "content": "Explain the difference between TCP and UDP in detail please. " * 10},
]


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: bool
    upstream: str  # "fast" or "paced"


SCENARIOS = (
    Scenario("unary", stream=False, upstream="fast"),
    Scenario("stream", stream=True, upstream="fast"),
    Scenario(f"stream paced {PACED_ITL_MS} ms", stream=True, upstream="paced"),
)


@dataclass
class Cell:
    """One contender, one scenario, one concurrency."""

    contender: str
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_req: float


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(f"unreadable wrk latency {value!r}")
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request_body(target: Target, scenario: Scenario) -> dict[str, object]:
    body: dict[str, object] = {"model": target.model, "messages": MESSAGES}
    if scenario.stream:
        body["stream"] = True
    return body


def wrk_script(target: Target, scenario: Scenario, folder: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(request_body(target, scenario)))}"]
    headers = {"Content-Type": "application/json", **target.headers}
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = folder / f"{target.name}-{scenario.upstream}-{int(scenario.stream)}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    target: Target, scenario: Scenario, *, connections: int, duration_s: float, folder: Path, cpu_pid: int
) -> Cell:
    script = wrk_script(target, scenario, folder)
    argv = [
        "taskset",
        "-c",
        str(LOADGEN_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "-s",
        str(script),
        target.url + target.path,
    ]
    cpu0 = cpu_seconds(cpu_pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    cpu = cpu_seconds(cpu_pid) - cpu0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Cell(
        contender=target.name,
        scenario=scenario.name,
        connections=connections,
        rps=rps,
        p50_ms=_ms(lat["50"]) if "50" in lat else float("nan"),
        p99_ms=_ms(lat["99"]) if "99" in lat else float("nan"),
        errors=errors,
        cpu_us_per_req=cpu / total * 1e6 if total else float("nan"),
    )


@dataclass
class FixedRate:
    """Open loop: requests sent at a fixed rate whatever the answers do, so a server that
    falls behind shows it in the latency (no coordinated omission)."""

    contender: str
    scenario: str
    rate: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int


def run_fixed_rate(target: Target, scenario: Scenario, *, rate: int, duration_s: float, folder: Path) -> FixedRate:
    """h2load, one request per connection, one connection every 1/rate s."""
    n = max(1, round(rate * duration_s))
    body = folder / f"body-{target.name}-{scenario.upstream}-{int(scenario.stream)}.json"
    body.write_text(json.dumps(request_body(target, scenario)))
    log = folder / f"h2load-{target.name}-{scenario.upstream}-{int(scenario.stream)}.log"
    headers = {"Content-Type": "application/json", **target.headers}
    argv = [
        "taskset",
        "-c",
        str(LOADGEN_CPU),
        "h2load",
        "--h1",
        "-n",
        str(n),
        "-c",
        str(n),
        "--rate",
        "1",
        f"--rate-period={1000 // rate}ms",
        "-d",
        str(body),
        f"--log-file={log}",
    ]
    argv += [x for k, v in headers.items() for x in ("-H", f"{k}: {v}")]
    subprocess.run(
        [*argv, target.url + target.path], capture_output=True, text=True, timeout=duration_s + 120, check=True
    )
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    ok = sorted(int(r[2]) / 1000 for r in rows if r[1].startswith("2"))
    errors = n - len(ok)
    if not ok:
        return FixedRate(target.name, scenario.name, rate, float("nan"), float("nan"), float("nan"), errors)
    return FixedRate(
        target.name,
        scenario.name,
        rate,
        statistics.median(ok),
        ok[min(len(ok) - 1, int(len(ok) * 0.99))],
        ok[-1],
        errors,
    )


def first_chunk_ms(target: Target, scenario: Scenario, *, n: int) -> float:
    """Median time from sending a streaming request to the first byte of its body."""
    body = json.dumps(request_body(target, scenario)).encode()
    host, port = target.url.removeprefix("http://").split(":")
    head = f"POST {target.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
    request = (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    samples = []
    for _ in range(n):
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = time.perf_counter()
            s.sendall(request)
            got = b""
            while b"data:" not in got:
                data = s.recv(65536)
                if not data:
                    raise RuntimeError(f"{target.name}: stream closed before its first chunk: {got[:300]!r}")
                got += data
            samples.append((time.perf_counter() - t) * 1000)
            while s.recv(65536):  # drain, so the server finishes normally
                pass
    return statistics.median(samples)


@contextmanager
def contenders(peers: list[str], folder: Path) -> Iterator[dict[str, dict[str, Target]]]:
    """Every contender per upstream kind ("fast", "paced"), started, and stopped after."""
    started: list[Target] = []

    def keep(t: Target) -> Target:
        started.append(t)
        return t

    try:
        mocks: dict[str, Target] = {}
        for kind, extra in (("fast", []), ("paced", ["--itl-ms", str(PACED_ITL_MS)])):
            port = free_port()
            mocks[kind] = keep(
                spawn(
                    f"mock-{kind}",
                    python_module("gateway", "mock", "--port", str(port), "--tokens", str(TOKENS), *extra),
                    port=port,
                    cpu=LOADGEN_CPU,
                    health="/health",
                    log=folder / f"mock-{kind}.log",
                )
            )
        for mock in mocks.values():
            mock.name, mock.path, mock.model = "direct", "/v1/chat/completions", "gpt-x"
        out: dict[str, dict[str, Target]] = {k: {"direct": m} for k, m in mocks.items()}

        for kind, mock in mocks.items():
            port = free_port()
            floor = keep(
                spawn(
                    "floor",
                    python_module("bench.floor", "--port", str(port), "--upstream", mock.url),
                    port=port,
                    cpu=SERVER_CPU,
                    health="/health",
                    log=folder / f"floor-{kind}.log",
                )
            )
            out[kind]["floor"] = floor
            port = free_port()
            out[kind]["floor+pool"] = keep(
                spawn(
                    "floor+pool",
                    python_module("bench.floor", "--pool", "--port", str(port), "--upstream", mock.url),
                    port=port,
                    cpu=SERVER_CPU,
                    health="/health",
                    log=folder / f"floor-pool-{kind}.log",
                )
            )

        for name, client in (("gateway", "aiohttp"), ("gateway+pool", "pool")):
            config = folder / f"{name}.json"
            config.write_text(
                json.dumps(
                    {
                        "default_provider": "fast",
                        "providers": {
                            kind: {
                                "base_url": m.url + "/v1",
                                "keys": [{"value": "sk-bench"}],
                                "pricing_provider": "openai",
                                "client": client,
                            }
                            for kind, m in mocks.items()
                        },
                    }
                )
            )
            port = free_port()
            argv = python_module(
                # One process on its core, as every contender (the default is one per core).
                *("gateway", "--log-level", "WARNING", "serve", "--workers", "1"),
                *("--config", str(config), "--port", str(port)),
            )
            gw = keep(spawn(name, argv, port=port, cpu=SERVER_CPU, health="/health", log=folder / f"{name}.log"))
            for kind in mocks:
                out[kind][name] = Target(
                    name=name, url=gw.url, model=f"{kind}/gpt-4o-mini", proc=gw.proc, startup_s=gw.startup_s
                )

        for peer in peers:
            from bench.compare import peers as peer_mod

            start: Callable[..., Target] = getattr(peer_mod, f"start_{peer}")
            for kind, mock in mocks.items():
                t = keep(start(port=free_port(), upstream_url=mock.url, cpu=SERVER_CPU))
                t.name = peer
                out[kind][peer] = t
        yield out
    finally:
        for t in reversed(started):
            t.stop()


def run(
    *,
    peers: list[str],
    connections: list[int],
    duration_s: float,
    ttfc_n: int,
    scenarios: tuple[Scenario, ...],
    rate: int,
) -> dict[str, object]:
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.load needs {tool} (Debian: apt-get install {package})")
    cells: list[Cell] = []
    fixed: list[FixedRate] = []
    facts: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, contenders(peers, Path(tmp)) as by_kind:
        folder = Path(tmp)
        names = list(by_kind["fast"])
        time.sleep(IDLE_SETTLE_S)
        for name in names:
            t = by_kind["fast"][name]
            facts[name] = {"startup_s": t.startup_s, "rss_idle_mb": rss_mb(t.pid)}
        for scenario in scenarios:
            for name in names:
                target = by_kind[scenario.upstream][name]
                for c in connections:
                    cells.append(
                        run_wrk(
                            target, scenario, connections=c, duration_s=duration_s, folder=folder, cpu_pid=target.pid
                        )
                    )
        for scenario in scenarios:
            for name in names:
                target = by_kind[scenario.upstream][name]
                fixed.append(run_fixed_rate(target, scenario, rate=rate, duration_s=duration_s, folder=folder))
        paced = SCENARIOS[2]
        for name in names:
            facts[name]["first_chunk_ms"] = first_chunk_ms(by_kind["paced"][name], paced, n=ttfc_n)
            facts[name]["rss_after_mb"] = rss_mb(by_kind["fast"][name].pid)
    return {"cells": [asdict(c) for c in cells], "fixed": [asdict(f) for f in fixed], "facts": facts}


def report(result: dict[str, object]) -> str:
    cells = [Cell(**c) for c in result["cells"]]  # type: ignore[attr-defined, arg-type]
    facts: dict[str, dict[str, float]] = result["facts"]  # type: ignore[assignment]
    lines = [
        f"{'scenario':<22} {'conns':>5} {'contender':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'+p50 ms':>8} {'CPU µs/req':>11} {'x floor':>7} {'errors':>6}"
    ]
    key = {(c.scenario, c.connections, c.contender): c for c in cells}
    for c in cells:
        direct = key.get((c.scenario, c.connections, "direct"))
        floor = key.get((c.scenario, c.connections, "floor"))
        added = c.p50_ms - direct.p50_ms if direct else float("nan")
        ratio = c.cpu_us_per_req / floor.cpu_us_per_req if floor and c.contender != "direct" else float("nan")
        lines.append(
            f"{c.scenario:<22} {c.connections:>5} {c.contender:<12} {c.rps:>9.0f} {c.p50_ms:>8.2f} "
            f"{c.p99_ms:>8.2f} {added:>8.2f} {c.cpu_us_per_req:>11.0f} {ratio:>7.2f} {c.errors:>6}"
        )
    lines.append("")
    lines.append(
        f"{'scenario (fixed rate)':<22} {'req/s':>5} {'contender':<12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'+p50 ms':>8} {'errors':>6}"
    )
    fixed = [FixedRate(**f) for f in result.get("fixed", [])]  # type: ignore[attr-defined]
    fkey = {(f.scenario, f.contender): f for f in fixed}
    for f in fixed:
        base = fkey.get((f.scenario, "direct"))
        added = f.p50_ms - base.p50_ms if base else float("nan")
        lines.append(
            f"{f.scenario:<22} {f.rate:>5} {f.contender:<12} {f.p50_ms:>8.2f} {f.p99_ms:>8.2f} "
            f"{f.max_ms:>8.2f} {added:>8.2f} {f.errors:>6}"
        )
    lines.append("")
    lines.append(
        f"{'contender':<12} {'start s':>8} {'RSS idle MB':>12} {'RSS after MB':>13} "
        f"{'first chunk ms':>15} {'+first chunk ms':>16}"
    )
    direct_ttfc = facts.get("direct", {}).get("first_chunk_ms", float("nan"))
    for name, f in facts.items():
        lines.append(
            f"{name:<12} {f['startup_s']:>8.2f} {f['rss_idle_mb']:>12.1f} {f['rss_after_mb']:>13.1f} "
            f"{f['first_chunk_ms']:>15.2f} {f['first_chunk_ms'] - direct_ttfc:>16.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run: checks it works, figures meaningless")
    p.add_argument("--peers", default="", help="comma-separated: litellm,portkey (installed on first use)")
    p.add_argument("--duration", type=int, default=5, help="whole seconds per cell (default 5)")
    p.add_argument("--connections", default="1,64", help="comma-separated concurrencies (default 1,64)")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--scenarios", default="", help="comma-separated scenario names (default: all)")
    p.add_argument("--rate", type=int, default=100, help="requests/s of the fixed-rate runs (default 100)")
    args = p.parse_args()
    peers = [x for x in args.peers.split(",") if x]
    duration, conns, ttfc_n = (
        (1.0, [1, 4], 3) if args.quick else (args.duration, [int(c) for c in args.connections.split(",")], 50)
    )
    wanted = {x.strip() for x in args.scenarios.split(",") if x.strip()}
    scenarios = tuple(sc for sc in SCENARIOS if not wanted or sc.name in wanted)
    result = run(
        peers=peers, connections=conns, duration_s=duration, ttfc_n=ttfc_n, scenarios=scenarios, rate=args.rate
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(report(result))


if __name__ == "__main__":
    main()
