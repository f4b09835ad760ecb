"""Where the gateway's CPU goes while it relays paced streams: py-spy samples of
``gateway serve`` (CPU 1) under N concurrent streams from ``bench.streams``' client
(CPU 0, with the mock), summed by function (self and inclusive) and by package.

    .venv/bin/python -m bench.streamprof --streams 200 --chunks 400 --itl-ms 20
    .venv/bin/python -m bench.streamprof --perf         # perf: the kernel's, libpython's, uvloop's shares

Needs py-spy (``pip install py-spy``; found on PATH, beside this Python, or ``--py-spy``).
Samples only while the gateway is on CPU (py-spy drops idle samples), so the shares are of
its busy time. Sampling costs the gateway some CPU itself: read the shares, not the µs.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.streams import _prepare, _warm, run_streams, servers


def _py_spy(given: str | None) -> str:
    for candidate in (given, shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("bench.streamprof needs py-spy: pip install py-spy, or give --py-spy PATH")


def _where(frame: str) -> str:
    """The package a frame belongs to: gateway.<subpackage>, aiohttp, asyncio, uvloop, ..."""
    if "(" not in frame:
        return "native"
    path = frame.rsplit("(", 1)[1].rstrip(")").rsplit(":", 1)[0]
    parts = [x for x in path.split("/") if x]
    for k, part in enumerate(parts):
        if part == "gateway" and k + 1 < len(parts):
            return "gateway." + parts[k + 1].removesuffix(".py")
        if part in ("aiohttp", "asyncio", "uvloop", "msgspec", "yarl", "multidict"):
            return part
    if path.endswith(".py") or path.startswith("<frozen"):
        return "other python"
    return "native: " + (parts[-1] if parts else path)


def summarise(raw: Path, top: int) -> str:
    """Self and inclusive shares by function and by package, from py-spy's raw format."""
    self_by: collections.Counter[str] = collections.Counter()
    incl_by: collections.Counter[str] = collections.Counter()
    pkg_self: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        # The event loop's thread only (not the log writer's, idle on its queue), and not
        # the loop waiting in epoll (which --native samples as if on CPU).
        if not frames or not any(f.startswith("Runner.run ") for f in frames) or frames[-1].startswith("epoll"):
            continue
        total += n
        self_by[frames[-1]] += n
        pkg_self[_where(frames[-1])] += n
        for f in set(frames):
            incl_by[f] += n
    if not total:
        return "no samples (was the gateway busy? is py-spy allowed to attach: ptrace?)"
    out = [f"{total} samples of the gateway on CPU", "", "self time by package:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in pkg_self.most_common()]
    out += ["", f"self time, top {top} functions:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in self_by.most_common(top)]
    out += ["", f"inclusive time, top {top} functions:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in incl_by.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=("gateway", "pipe"), default="gateway", help="the server profiled")
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--chunks", type=int, default=400, help="per stream (default 400: ~8 s at 20 ms)")
    p.add_argument("--itl-ms", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples a second (default 200)")
    p.add_argument("--native", action="store_true", help="C frames too")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--py-spy", help="path of py-spy")
    p.add_argument("--perf", action="store_true", help="perf record instead: shares by shared object and symbol")
    p.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = p.parse_args()
    spy = "perf" if args.perf else _py_spy(args.py_spy)
    _prepare()
    with (
        tempfile.TemporaryDirectory(prefix="gateway-streamprof-") as tmp,
        servers(Path(tmp), (args.server,)) as (ts, mock),
    ):
        _warm(ts, mock)
        gw = ts[args.server]
        raw = args.raw or Path(tmp) / "stacks.txt"
        seconds = int((args.chunks + 1) * args.itl_ms / 1000) + 2
        if args.perf:  # the kernel's and the C libraries' share, by shared object
            data = Path(tmp) / "perf.data"
            argv = ["perf", "record", "-e", "cpu-clock", "-F", str(args.rate), "-p", str(gw.pid), "-o", str(data)]
            argv += ["--", "sleep", str(seconds)]
        else:
            argv = [spy, "record", "--pid", str(gw.pid), "--format", "raw", "--output", str(raw)]
            argv += ["--rate", str(args.rate), "--duration", str(seconds)]
            argv += ["--native"] if args.native else ["--nonblocking"]  # native stacks need the process paused
        spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        run = run_streams(gw, args.server, n=args.streams, chunks=args.chunks, itl_ms=args.itl_ms, mock_pid=mock)
        print(
            f"{run.events} events, {run.failed} failed, {run.server_cpu_s / max(1, run.events) * 1e6:.1f} CPU µs/event"
        )
        try:
            _, err = spy_proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
            _, err = spy_proc.communicate()
        if args.perf:
            for keys in ("dso", "dso,sym"):
                report = ["perf", "report", "-i", str(data), "--stdio", "--sort", keys, "--percent-limit", "0.7"]
                out = subprocess.run(report, capture_output=True, text=True, timeout=300).stdout
                print("\n".join(x for x in out.splitlines() if x.strip() and not x.startswith("#")))
            return
        if spy_proc.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed ({spy_proc.returncode}): {err.decode(errors='replace')[-2000:]}")
        print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
