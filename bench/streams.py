"""Per-event cost of relaying streams, and concurrent paced streams per core: direct
(client -> ``gateway mock``), pipe (client -> ``bench/pipe.py`` -> mock: the relay floor)
and gateway (client -> ``gateway serve`` -> mock).

    .venv/bin/python -m bench.streams cost --streams 200 --chunks 20,100 --itl-ms 20
    .venv/bin/python -m bench.streams capacity --levels 250,500,1000,1500,2000 --tokens 200
    .venv/bin/python -m bench.streams cost --quick        # smoke run: figures meaningless

The server under test alone on CPU 1; the mock and the load client (this process) on CPU
0. The client is a raw uvloop Protocol: one fixed HTTP/1.1 request per connection
(``Connection: close``), events counted as ``\\n\\n`` frame ends in ``data_received``,
and the gap before each event recorded (inter-token delay). Streams start spread evenly
over one inter-token interval, as independent users' streams would, not in lockstep.

``cost``: each server's CPU (utime+stime from /proc) over a run of N streams of K chunks,
for two values of K; the slope, (CPU(K2) - CPU(K1)) / (events(K2) - events(K1)), is the
CPU of one relayed event with the per-stream work (accept, request, upstream connect)
cancelled out; raw CPU/event and the per-stream part are reported beside it.

``capacity``: N streams paced like a model (50 ms apart, 200 tokens), N raised level by
level until a server's p99 inter-token delay passes direct's at the same N by more than
``--max-added-ms`` (5) or a stream fails. CPU 0 (mock + client) is reported: past ~90%
busy the mock itself cannot keep the pace and the level says nothing about the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench.load import CLK_TCK, LOADGEN_CPU, MESSAGES, SERVER_CPU, cpu_seconds
from bench.targets import Target, free_port, python_module, spawn

SERVERS = ("direct", "pipe", "gateway")
PEERS = ("litellm", "portkey")
# The gateway with an upstream of another dialect (the client speaks OpenAI; the gateway
# translates the request and each event back): its own mock, paced by its flags and
# sized by the request's max_tokens (the translated request carries no "mock" field).
TRANSLATED = {"anthropic": "anthropic/claude-x", "gemini": "gemini/gemini-x"}
CPU0_SATURATED = 0.9  # share of CPU 0 busy past which the mock's pace is suspect
NOISY = 0.1  # share of CPU 1 taken by other processes worth a note


def cpu_busy_s(cpu: int) -> float:
    """Seconds CPU ``cpu`` has been busy (anything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(x) for x in line.split()[1:]]
                return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK
    return float("nan")


class Stream(asyncio.Protocol):
    """One streaming request: sends it, counts frame ends, records the gap before each."""

    def __init__(self, request: bytes, gaps: list[float], done: asyncio.Future[None]) -> None:
        self.request, self.gaps, self.done = request, gaps, done
        self.events, self.ok, self.tail = 0, False, b""
        self.last = self.ttft = 0.0
        self.head: bytes | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last = time.perf_counter()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            self.head = data[:12]
        n = data.count(b"\n\n") + (self.tail == b"\n" and data[:1] == b"\n")
        self.tail = data[-1:]
        if n:
            now = time.perf_counter()
            if self.events:  # the first event's wait is the time to first token, not a gap
                self.gaps.append(now - self.last)
            else:
                self.ttft = now - self.last
            self.gaps.extend([0.0] * (n - 1 if self.events else 0))
            self.events += n
            self.last = now
            if b"[DONE]" in data:
                self.ok = self.head == b"HTTP/1.1 200"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class Run:
    """One server, one run of N streams."""

    server: str
    streams: int
    chunks: int
    itl_ms: float
    events: int = 0
    failed: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    mock_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    cpu0_all_s: float = 0.0  # CPU 0 busy, everything on it (other users of the machine too)
    cpu1_all_s: float = 0.0  # CPU 1 busy, everything on it
    p50_itl_ms: float = float("nan")
    p99_itl_ms: float = float("nan")
    max_itl_ms: float = float("nan")
    p99_ttft_ms: float = float("nan")  # request sent to first event
    notes: list[str] = field(default_factory=list)

    @property
    def cpu0_busy(self) -> float:
        """Share of CPU 0 (mock + client) busy over the run."""
        return (self.mock_cpu_s + self.client_cpu_s) / self.wall_s if self.wall_s else float("nan")

    @property
    def cpu1_others(self) -> float:
        """Share of CPU 1 taken by anything but the server under test (the machine's noise)."""
        other = self.cpu1_all_s - (0.0 if self.server == "direct" else self.server_cpu_s)
        return max(0.0, other) / self.wall_s if self.wall_s else float("nan")


def request_bytes(target: Target, chunks: int, itl_ms: float) -> bytes:
    fields: dict[str, Any] = {
        "model": target.model,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "mock": {"tokens": chunks, "itl_ms": itl_ms},
    }
    if target.name in TRANSLATED:
        fields["max_tokens"] = chunks
    body = json.dumps(fields).encode()
    host = target.url.removeprefix("http://")
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _drive(
    host: str, port: int, request: bytes, n: int, spread_s: float, timeout_s: float
) -> tuple[list[Stream], list[float], int]:
    """The streams, the gaps, and how many streams were still open at ``timeout_s`` (cut)."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    streams: list[Stream] = []
    t0 = loop.time()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + spread_s * i / n - loop.time()))
        done: asyncio.Future[None] = loop.create_future()
        proto = Stream(request, gaps, done)
        streams.append(proto)
        try:
            await loop.create_connection(lambda: proto, host, port)
            await done
        except OSError:
            pass

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for t in pending:
        t.cancel()
    for s in streams:
        if s.transport is not None:
            s.transport.abort()
    return streams, gaps, len(pending)


def run_streams(
    target: Target,
    server: str,
    *,
    n: int,
    chunks: int,
    itl_ms: float,
    mock_pid: int,
    ramp_s: float | None = None,
    timeout_s: float | None = None,
) -> Run:
    """N concurrent streams of ``chunks`` chunks through ``target``, their starts spread
    evenly over ``ramp_s`` (default: one inter-token interval); CPU of the server
    (``target.pid``), of the mock and of this client around the run."""
    host, port = target.url.removeprefix("http://").split(":")
    request = request_bytes(target, chunks, itl_ms)
    spread_s = max(itl_ms, 1.0) / 1000 if ramp_s is None else ramp_s
    timeout_s = timeout_s or 30.0 + spread_s + (chunks + 1) * itl_ms / 1000 * 3 + n * 0.01

    def snapshot() -> list[float]:
        upstream = target.upstream_pid or mock_pid
        pids = (cpu_seconds(target.pid), cpu_seconds(upstream), time.process_time())
        return [*pids, cpu_busy_s(LOADGEN_CPU), cpu_busy_s(SERVER_CPU), time.perf_counter()]

    before = snapshot()
    streams, gaps, cut = uvloop.run(_drive(host, int(port), request, n, spread_s, timeout_s))
    d = [b - a for a, b in zip(before, snapshot(), strict=True)]
    run = Run(server, n, chunks, itl_ms, wall_s=d[5], server_cpu_s=d[0], mock_cpu_s=d[1], client_cpu_s=d[2])
    run.cpu0_all_s, run.cpu1_all_s = d[3], d[4]
    gaps.sort()
    run.events = sum(s.events for s in streams)
    run.failed = n - sum(s.ok for s in streams)
    if gaps:
        run.p50_itl_ms = gaps[len(gaps) // 2] * 1000
        run.p99_itl_ms = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1000
        run.max_itl_ms = gaps[-1] * 1000
    ttfts = sorted(s.ttft for s in streams if s.events)
    if ttfts:
        run.p99_ttft_ms = ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))] * 1000
    if cut:  # counted failed, but by the harness: a slow server's streams may not have failed
        run.notes.append(f"{cut} streams still open at the {timeout_s:.0f} s timeout, cut")
    if server not in TRANSLATED and run.events != n * (chunks + 4):
        # K chunks are K + 4 events: a server that drops or resizes the body's "mock" field, or
        # streams that were cut, show here.
        run.notes.append(f"{run.events} events, not {n} x {chunks + 4}")
    if run.cpu0_all_s / max(run.wall_s, 1e-9) > CPU0_SATURATED:
        run.notes.append(f"CPU 0 {run.cpu0_all_s / max(run.wall_s, 1e-9):.0%} busy: the mock may not keep the pace")
    if run.cpu1_others > NOISY:
        run.notes.append(f"others took {run.cpu1_others:.0%} of CPU 1")
    return run


@contextmanager
def servers(
    folder: Path, wanted: tuple[str, ...], upstream: str = "mock", itl_ms: float = 20.0, tokens: int = 20
) -> Iterator[tuple[dict[str, Target], int]]:
    """The upstream (``gateway mock``, or the lean ``bench.pacer``) on CPU 0 and each wanted
    server on CPU 1; yields them and the upstream's pid."""
    with ExitStack() as stack:

        def start(name: str, argv: list[str], port: int, cpu: int) -> Target:
            t = spawn(name, argv, port=port, cpu=cpu, health="/health", log=folder / f"{name}.log")
            stack.callback(t.stop)
            return t

        port = free_port()
        # The pacer's own length and pace are the run's, for a server that drops the body's
        # "mock" field (Portkey does): every server's streams are then the same.
        argv = (
            python_module("bench.pacer", "--port", str(port), "--tokens", str(tokens), "--itl-ms", str(itl_ms))
            if upstream == "pacer"
            else python_module("gateway", "mock", "--port", str(port))
        )
        mock = start(upstream, argv, port, LOADGEN_CPU)
        mock.model = "gpt-x"
        out: dict[str, Target] = {}
        if "direct" in wanted:
            out["direct"] = mock
        if "pipe" in wanted:
            port = free_port()
            argv = python_module(
                "bench.pipe", "--port", str(port), "--upstream", f"127.0.0.1:{mock.url.rsplit(':', 1)[1]}"
            )
            out["pipe"] = start("pipe", argv, port, SERVER_CPU)
            out["pipe"].model = "gpt-x"
        paced: Target | None = None
        if any(x in TRANSLATED for x in wanted):
            port = free_port()
            argv = python_module("gateway", "mock", "--port", str(port), "--tokens", "100000", "--itl-ms", str(itl_ms))
            paced = start("paced-mock", argv, port, LOADGEN_CPU)
        for name in (x for x in wanted if x == "gateway" or x in TRANSLATED):
            providers = {"up": {"base_url": mock.url + "/v1", "pricing_provider": "openai"}}
            if paced is not None:
                providers["anthropic"] = {"dialect": "anthropic", "base_url": paced.url}
                providers["gemini"] = {"dialect": "gemini", "base_url": paced.url}
            for provider in providers.values():
                provider["keys"] = [{"value": "sk-bench"}]  # type: ignore[assignment]
                provider["max_connections"] = 100_000  # type: ignore[assignment]  # the default 1000 would cap N
            config = folder / f"{name}.json"
            config.write_text(json.dumps({"default_provider": "up", "providers": providers}))
            port = free_port()
            argv = python_module(
                *("gateway", "--log-level", "WARNING", "serve", "--workers", "1"),
                *("--config", str(config), "--port", str(port)),
            )
            out[name] = start(name, argv, port, SERVER_CPU)
            out[name].model = TRANSLATED.get(name, "up/gpt-4o-mini")
            if name in TRANSLATED and paced is not None:
                out[name].upstream_pid = paced.pid
        for peer in (x for x in wanted if x in PEERS):  # installed on first use (bench/compare/peers.py)
            from bench.compare import peers

            t = getattr(peers, f"start_{peer}")(port=free_port(), upstream_url=mock.url, cpu=SERVER_CPU)
            stack.callback(t.stop)
            out[peer] = t
        yield out, mock.pid


def _prepare() -> None:
    os.sched_setaffinity(0, {LOADGEN_CPU})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _warm(targets: dict[str, Target], mock_pid: int) -> None:
    for name, t in targets.items():
        run = run_streams(t, name, n=20, chunks=5, itl_ms=1, mock_pid=mock_pid, timeout_s=30)
        if run.failed:
            raise SystemExit(f"{name}: {run.failed} of 20 warm-up streams failed; see its log")


def cost(args: argparse.Namespace) -> dict[str, Any]:
    """Per-event CPU: every server at each K, ``--runs`` rounds, servers alternating."""
    k1, k2 = args.chunks
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="gateway-streams-") as tmp,
        servers(Path(tmp), args.servers, args.upstream, args.itl_ms) as (ts, mock),
    ):
        _warm(ts, mock)
        for _ in range(args.runs):
            for k in (k1, k2):
                for name, t in ts.items():
                    runs.append(run_streams(t, name, n=args.streams, chunks=k, itl_ms=args.itl_ms, mock_pid=mock))
    rows = []
    for name in args.servers:
        per_round = []
        for i in range(args.runs):
            a, b = (
                next(r for r in runs[i * 2 * len(args.servers) :] if r.server == name and r.chunks == k)
                for k in (k1, k2)
            )
            slope = (b.server_cpu_s - a.server_cpu_s) / max(1, b.events - a.events)
            per_stream = (a.server_cpu_s - slope * a.events) / a.streams
            per_round.append((slope * 1e6, b.server_cpu_s / max(1, b.events) * 1e6, per_stream * 1e6))
        med = [statistics.median(x) for x in zip(*per_round, strict=True)]
        rows.append(
            {"server": name, "slope_us": med[0], "raw_us": med[1], "per_stream_us": med[2], "rounds": per_round}
        )
    return {"mode": "cost", "runs": [asdict(r) | {"cpu0_busy": r.cpu0_busy} for r in runs], "rows": rows}


def capacity(args: argparse.Namespace) -> dict[str, Any]:
    """Raise N until a server's added p99 inter-token delay passes the bound or a stream fails."""
    runs: list[Run] = []
    best: dict[str, int] = {name: 0 for name in args.servers if name != "direct"}
    with (
        tempfile.TemporaryDirectory(prefix="gateway-streams-") as tmp,
        servers(Path(tmp), args.servers, args.upstream, args.itl_ms, args.tokens) as (ts, mock),
    ):
        _warm(ts, mock)
        live = [name for name in args.servers]
        for n in args.levels:
            if not [x for x in live if x != "direct"]:
                break
            # Starts spread over half a stream: full concurrency for the second half, and new
            # streams arriving at twice the steady rate N / duration, not in one burst.
            ramp = args.ramp_s if args.ramp_s is not None else (args.tokens + 1) * args.itl_ms / 2000
            level = {
                name: run_streams(
                    ts[name], name, n=n, chunks=args.tokens, itl_ms=args.itl_ms, mock_pid=mock, ramp_s=ramp
                )
                for name in live
            }
            runs += level.values()
            base = level.get("direct")
            for name, r in level.items():
                if name == "direct":
                    if r.failed:
                        r.notes.append("direct itself failed streams: the mock or the client is the limit")
                    continue
                added = r.p99_itl_ms - (base.p99_itl_ms if base else args.itl_ms)
                if r.failed or added > args.max_added_ms:
                    live.remove(name)
                else:
                    best[name] = n
    return {"mode": "capacity", "runs": [asdict(r) | {"cpu0_busy": r.cpu0_busy} for r in runs], "max_streams": best}


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        f"{'server':<8} {'N':>5} {'K':>4} {'events':>7} {'fail':>4} {'wall s':>6} {'srv CPU s':>9} "
        f"{'µs/event':>8} {'CPU0 ours/all':>13} {'p50 itl':>7} {'p99 itl':>7} {'+p99':>6} {'p99 ttft':>8}  notes"
    ]
    d = None  # direct's run of the same round: each round runs direct first
    for r in runs:
        if r["server"] == "direct":
            d = r
        elif d is not None and (d["streams"], d["chunks"]) != (r["streams"], r["chunks"]):
            d = None
        added = r["p99_itl_ms"] - d["p99_itl_ms"] if d else float("nan")
        per_event = r["server_cpu_s"] / max(1, r["events"]) * 1e6
        cpu0 = f"{r['cpu0_busy']:>6.0%}/{r['cpu0_all_s'] / max(r['wall_s'], 1e-9):<6.0%}"
        lines.append(
            f"{r['server']:<8} {r['streams']:>5} {r['chunks']:>4} {r['events']:>7} {r['failed']:>4} "
            f"{r['wall_s']:>6.1f} {r['server_cpu_s']:>9.2f} {per_event:>8.1f} {cpu0} {r['p50_itl_ms']:>7.1f} "
            f"{r['p99_itl_ms']:>7.1f} {added:>6.1f} {r['p99_ttft_ms']:>8.1f}  {'; '.join(r['notes'])}"
        )
    lines.append("")
    if result["mode"] == "cost":
        rows = {r["server"]: r for r in result["rows"]}
        pipe = rows.get("pipe")
        lines.append(f"{'server':<8} {'µs/event (slope)':>16} {'µs/event (raw)':>14} {'µs/stream':>9} {'x pipe':>6}")
        for name, r in rows.items():
            ratio = r["slope_us"] / pipe["slope_us"] if pipe and pipe["slope_us"] and name != "direct" else float("nan")
            lines.append(
                f"{name:<8} {r['slope_us']:>16.1f} {r['raw_us']:>14.1f} {r['per_stream_us']:>9.0f} {ratio:>6.2f}"
            )
        lines.append("(direct: the mock's own CPU, on CPU 0; slope = CPU per event with the per-stream work cancelled)")
    else:
        for name, n in result["max_streams"].items():
            lines.append(f"max concurrent streams, {name}: {n}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("cost", "capacity"))
    p.add_argument("--quick", action="store_true", help="tiny run: checks it works, figures meaningless")
    p.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated, of: " + ", ".join(SERVERS + PEERS + tuple(TRANSLATED)),
    )
    p.add_argument("--streams", type=int, default=200, help="cost: concurrent streams (default 200)")
    p.add_argument("--chunks", default="20,100", help="cost: two chunk counts K1,K2 (default 20,100)")
    p.add_argument("--itl-ms", type=float, default=None, help="ms between chunks (cost 20, capacity 50)")
    p.add_argument("--runs", type=int, default=1, help="cost: rounds; medians reported (default 1)")
    p.add_argument("--levels", default="250,500,1000,1500,2000", help="capacity: concurrent streams, rising")
    p.add_argument("--tokens", type=int, default=200, help="capacity: chunks per stream (default 200)")
    p.add_argument("--ramp-s", type=float, default=None, help="capacity: start spread (default: half a stream)")
    p.add_argument("--max-added-ms", type=float, default=5.0, help="capacity: bound on added p99 gap (ms)")
    p.add_argument(
        "--upstream",
        choices=("mock", "pacer"),
        default=None,
        help="the paced upstream: gateway mock, or bench.pacer (lean: same frames; default: cost mock, capacity pacer)",
    )
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args()
    args.servers = tuple(s for s in args.servers.split(",") if s)
    args.chunks = tuple(int(k) for k in args.chunks.split(","))
    args.levels = [int(n) for n in args.levels.split(",")]
    if args.itl_ms is None:
        args.itl_ms = 20.0 if args.mode == "cost" else 50.0
    if args.upstream is None:
        args.upstream = "mock" if args.mode == "cost" else "pacer"
    if args.quick:
        args.streams, args.chunks, args.itl_ms, args.runs, args.levels, args.tokens = 10, (3, 8), 2.0, 1, [10, 20], 10
    _prepare()
    result = cost(args) if args.mode == "cost" else capacity(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(report(result))


if __name__ == "__main__":
    main()
