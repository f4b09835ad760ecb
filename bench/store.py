"""The state store's price per governed request: one admission and its settle, for a
virtual key with a rate limit, a token limit and a concurrency cap.

- memory: MemoryStore in the gateway's own process (``--workers 1``)
- local: LocalStore, a round trip over a Unix socket to the supervisor's MemoryStore in
  another process (``--workers N`` without Redis)
- redis: RedisStore on a redis-server on 127.0.0.1 (started here when it is on PATH)

Sequential: one pair at a time (the latency a request waits). Concurrent: 64 pairs in
flight (throughput). CPU: the caller's process, and for local the supervisor's, per pair.

    .venv/bin/python -m bench.store [--pairs N] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import uvloop

from gateway.state import Limit, Limits, MemoryStore, Store, Ticket, parse_window
from gateway.state.local import LocalStore, LocalStoreServer

LIMITS = Limits(
    principal="vk:bench",
    anchor=0.0,
    limits=(Limit("requests", 10**12, parse_window("1m")), Limit("tokens", 10**15, parse_window("1d"))),
    max_concurrency=10**6,
)
CONCURRENCY = 64


async def pair(store: Store) -> None:
    ticket = await store.admit(LIMITS, now=time.time(), tokens=100, cost=1000)
    assert isinstance(ticket, Ticket)
    await store.settle(LIMITS, ticket, tokens=50, cost=500)


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(make: Callable[[], Store], pairs: int, server_pid: int | None) -> dict[str, float]:
    store = make()
    try:
        for _ in range(200):  # connected, warm
            await pair(store)
        out: dict[str, float] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(pairs):
            await pair(store)
        out["sequential µs/pair"] = (time.perf_counter() - t0) / pairs * 1e6

        async def worker(n: int) -> None:
            for _ in range(n):
                await pair(store)

        s0 = cpu_s(server_pid) if server_pid else 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(pairs // CONCURRENCY) for _ in range(CONCURRENCY)))
        done = pairs // CONCURRENCY * CONCURRENCY
        out[f"{CONCURRENCY} in flight µs/pair"] = (time.perf_counter() - t0) / done * 1e6
        out["caller CPU µs/pair"] = (time.process_time() - c0) / done * 1e6
        if server_pid:
            out["supervisor CPU µs/pair"] = (cpu_s(server_pid) - s0) / done * 1e6
        return out
    finally:
        await store.close()


async def serve(path: str) -> None:
    """``--serve PATH``: the supervisor's side, until stdin closes."""
    server = LocalStoreServer(path)
    await server.start()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: done.done() or done.set_result(None))
    print("ready", flush=True)
    await done
    await server.close()


def start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return p, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.02)
    p.kill()
    return None


def run(label: str, coro: Awaitable[dict[str, float]]) -> None:
    figures = uvloop.run(coro)  # type: ignore[arg-type]
    print(f"{label:8}" + "".join(f"  {k}: {v:7.1f}" for k, v in figures.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=20_000)
    p.add_argument("--redis", help="a Redis URL (default: start redis-server from PATH, if there)")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve))
        return
    run("memory", measure(MemoryStore, args.pairs, None))
    d = tempfile.mkdtemp(prefix="gw-bench-")
    path = os.path.join(d, "store.sock")
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.store", "--serve", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        run("local", measure(lambda: LocalStore(path, timeout_s=5), args.pairs, server.pid))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    started = None if args.redis else start_redis()
    url = args.redis or (started[1] if started else None)
    if url is None:
        print("redis   (no redis-server on PATH; --redis URL)")
        return
    from gateway.state.redis import RedisStore

    try:
        run("redis", measure(lambda: RedisStore(url, prefix="bench:", timeout_s=5), args.pairs, None))
    finally:
        if started:
            started[0].kill()
            started[0].wait()


if __name__ == "__main__":
    main()
