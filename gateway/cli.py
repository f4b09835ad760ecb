"""``gateway`` / ``python -m gateway``: argv to config to a running server."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

from gateway import __version__, logline


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway",
        description="An OpenAI-compatible LLM gateway that adds almost nothing to each request.",
    )
    p.add_argument("--version", action="version", version=f"gateway {__version__}")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default: INFO)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. With no --config: the built-in mock provider, plus the "
        "'openai' provider when OPENAI_API_KEY or OPENAI_BASE_URL is set.",
    )
    s.add_argument("--config", metavar="FILE", help="config file (.json, .yaml, .yml or .toml)")
    s.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (default: server.port, 8080; 0 picks a free one)")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes serving the port (default: server.workers, else one per CPU core); "
        "1: this process serves, with no supervisor",
    )
    # Set by the supervisor for its workers (server.workers), not by hand.
    s.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    s.add_argument("--store-socket", help=argparse.SUPPRESS)

    c = sub.add_parser(
        "check",
        help="validate a config file and exit",
        description="Load a config file as 'serve' would, print any problem, exit 0 if valid.",
    )
    c.add_argument("config", metavar="FILE", help="config file to check")

    m = sub.add_parser(
        "mock",
        help="run the built-in fake LLM as an OpenAI-compatible server",
        description="Serve /v1/chat/completions, /v1/completions and /v1/models with synthetic "
        'answers. A request\'s "mock" field overrides these defaults per request.',
    )
    m.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    m.add_argument("--port", type=int, default=9000, help="port to listen on (default: 9000)")
    m.add_argument("--tokens", type=int, default=16, help="completion tokens per answer (default: 16)")
    m.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first chunk, ms (default: 0)")
    m.add_argument("--itl-ms", type=float, default=0.0, help="delay between chunks, ms (default: 0)")
    m.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with an error (0..1)")
    m.add_argument(
        "--error-status",
        type=int,
        action="append",
        help="status used for injected errors; repeat for several (default: 429 and 500)",
    )
    m.add_argument("--reset-rate", type=float, default=0.0, help="share of streams reset mid-way (0..1)")
    m.add_argument(
        "--no-usage", action="store_true", help="never report usage (as many self-hosted servers), even when asked"
    )
    m.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: no auth)")
    m.add_argument(
        "--record",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N requests for GET /mock/requests (default: 0, off)",
    )
    return p


def _run(coro: object) -> None:
    import uvloop

    uvloop.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logline.configure(args.log_level)
    if args.command is None:
        _parser().print_help()
        return 2

    from gateway import config

    if args.command == "check":
        try:
            config.load(args.config)
        except config.ConfigError as e:
            print(f"gateway: {e}", file=sys.stderr)
            return 1
        print(f"{args.config}: ok")
        return 0

    if args.command == "mock":
        import msgspec

        from gateway.server.mock import serve_mock

        try:
            mock_cfg = msgspec.convert(
                {
                    "tokens": args.tokens,
                    "ttft_ms": args.ttft_ms,
                    "itl_ms": args.itl_ms,
                    "error_rate": args.error_rate,
                    "reset_rate": args.reset_rate,
                    "usage": not args.no_usage,
                    **({"error_status": args.error_status} if args.error_status else {}),
                },
                type=config.MockConfig,
            )
        except msgspec.ValidationError as e:
            print(f"gateway mock: invalid option: {e}", file=sys.stderr)
            return 2
        try:
            _run(serve_mock(mock_cfg, host=args.host, port=args.port, api_key=args.api_key, record=args.record))
        except OSError as e:
            print(f"gateway mock: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
            return 1
        return 0

    if args.workers is not None and args.workers < 1:
        print(f"gateway serve: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        cfg = config.load(args.config) if args.config else config.from_env()
    except config.ConfigError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 1
    if args.supervisor_fd is None:
        workers = args.workers or cfg.server.workers or os.cpu_count() or 1
        if workers > 1:
            from gateway.server.workers import supervise

            _log_as(f"supervisor {os.getpid()}", args.log_level)
            return supervise(
                cfg, workers=workers, host=args.host, port=args.port, config_path=args.config, log_level=args.log_level
            )
        supervisor = None
    else:
        _log_as(f"worker {os.getpid()}", args.log_level)
        supervisor = socket.socket(fileno=args.supervisor_fd)

    from gateway.server.app import serve

    try:
        _run(
            serve(
                cfg,
                host=args.host,
                port=args.port,
                config_path=args.config,
                supervisor=supervisor,
                store_socket=args.store_socket,
            )
        )
    except OSError as e:
        print(f"gateway: cannot listen: {e.strerror}", file=sys.stderr)
        return 1
    return 0


def _log_as(who: str, level: str) -> None:
    """Log lines of a supervisor and its workers say which process speaks."""
    logline.configure(level, who=who)
