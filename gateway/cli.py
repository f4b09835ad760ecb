"""``gateway`` / ``python -m gateway``: argv to config to a running server."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

from gateway import __version__, logline

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

SERVE_EPILOG = """\
environment (overrides the config file; --host/--port override both):
  GATEWAY_HOST, GATEWAY_PORT        listen address (server.host, server.port)
  GATEWAY_WORKERS                   processes (server.workers)
  GATEWAY_SHUTDOWN_GRACE_S          SIGTERM: time to finish (server.shutdown_grace_s)
  GATEWAY_DRAIN_DELAY_S             SIGTERM: /health draining before the listener closes
  GATEWAY_AUTH_REQUIRED             true/false (auth.required)
  GATEWAY_ADMIN_TOKEN               enables /api/keys and /api/logs (auth.admin_token)
  GATEWAY_CLIENT_PROVIDER_KEYS      true/false: honour x-bf-direct-key
  GATEWAY_REDIS_URL                 shared state in Redis (store.redis_url)
  GATEWAY_STORE_FAIL_OPEN           true/false: serve uncounted while Redis is down
  GATEWAY_LOGS_PATH                 SQLite request log store (logs.path; turns it on)
  GATEWAY_LOG_FORMAT                text or json (--log-format; default json when stdout is no terminal)
  PROMETHEUS_MULTIPROC_DIR          /metrics sums every worker (an empty directory)
  HTTPS_PROXY, HTTP_PROXY           forward proxy for https / http upstreams (http://[user:pass@]host:port;
  ALL_PROXY, NO_PROXY               else ALL_PROXY), NO_PROXY hosts go direct; lower-case wins (providers.*.proxy)
without --config, providers come from the environment:
  OPENAI_API_KEY, OPENAI_BASE_URL         an 'openai' provider (any OpenAI-compatible server)
  ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   an 'anthropic' provider
  GEMINI_API_KEY, GEMINI_BASE_URL         a 'gemini' provider

routes (OpenAI's under /v1, and /openai, /langchain, /pydanticai, /litellm with and without /v1;
Anthropic's and Gemini's under their own prefix and those frameworks' three; docs/api.md):
  POST /v1/chat/completions, /v1/completions, /v1/embeddings, GET /v1/models[/{model}]
  POST /v1/async/chat/completions, /v1/async/completions, /v1/async/embeddings, GET .../{job_id}
  POST /anthropic/v1/messages, /anthropic/v1/messages/count_tokens, GET /anthropic/v1/models
                                                      the Anthropic SDK's wire format
  POST /genai/v1beta/models/{model}:generateContent   the Google GenAI SDK's (and :streamGenerateContent,
                                                      :countTokens, :embedContent, :batchEmbedContents;
                                                      GET /genai/v1beta/models; v1 too)
  GET, POST /api/keys, GET, DELETE /api/keys/{id}     virtual keys (with an admin token)
  GET /api/logs                                       the request log store (with an admin token)
  GET, HEAD /health [?providers=1]                    liveness; draining; per-provider state
  GET /metrics                                        Prometheus (OpenMetrics when asked)
"""

MOCK_EPILOG = """\
routes (with and without /v1):
  POST /v1/chat/completions, /v1/completions, /v1/embeddings, GET /v1/models   OpenAI's wire format
  POST /v1/messages, /v1/messages/count_tokens, GET /v1/models (anthropic-version)   Anthropic's
  POST /v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens,
       :embedContent, :batchEmbedContents; GET /v1beta/models              Gemini's
  POST /v1/responses, /v1/responses/input_tokens; GET, DELETE /v1/responses/{id};
       GET /v1/responses/{id}/input_items           OpenAI's Responses API (kept in memory)
  GET /mock/requests, DELETE /mock/requests                         the last --record requests
  GET /mock/stats, GET /health
a request's "mock" field (or header x-mock, JSON) overrides these options per request.
environment: none is read.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway",
        description="An OpenAI-compatible LLM gateway that adds almost nothing to each request.",
    )
    p.add_argument("--version", action="version", version=f"gateway {__version__}")
    p.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="log verbosity (default: INFO)")
    p.add_argument(
        "--log-format",
        choices=logline.FORMATS,
        help="text lines on stderr, or JSON lines on stdout beside the access log "
        "(default: GATEWAY_LOG_FORMAT, else json when stdout is not a terminal)",
    )
    # Also after the subcommand (gateway serve --log-level DEBUG): there it overrides.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help="log verbosity")
    common.add_argument("--log-format", default=argparse.SUPPRESS, choices=logline.FORMATS, help="text or json")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "serve",
        parents=[common],
        help="run the gateway",
        description="Run the gateway. With no --config: the built-in mock provider, plus the "
        "'openai' provider when OPENAI_API_KEY or OPENAI_BASE_URL is set.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        parents=[common],
        help="validate a config file and exit",
        description="Load a config file as 'serve' would and print every problem at once: errors "
        "(exit 1), environment variables its env. references need that are not set here "
        "(exit 0: the file may be checked where its secrets are not; --strict: exit 1), warnings.",
    )
    c.add_argument("config", metavar="FILE", help="config file to check")
    c.add_argument("--strict", action="store_true", help="an environment variable that is not set is an error")

    m = sub.add_parser(
        "mock",
        parents=[common],
        epilog=MOCK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    m.add_argument(
        "--no-responses",
        action="store_true",
        help="serve no Responses API (404 at /v1/responses), as many OpenAI-compatible servers",
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
    try:
        log_format = logline.resolve_format(args.log_format)
    except ValueError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 2
    # Workers inherit it (their stdout is the supervisor's).
    os.environ[logline.FORMAT_ENV] = log_format
    logline.configure(args.log_level, fmt=log_format)
    if args.command is None:
        _parser().print_help()
        return 2

    from gateway import config

    if args.command == "check":
        _, _, problems = config.check(args.config)
        for m in problems.errors:
            print(f"gateway: error: {m}", file=sys.stderr)
        for m in problems.missing:
            print(f"gateway: {'error' if args.strict else 'to set before serving'}: {m}", file=sys.stderr)
        for m in problems.warnings:
            print(f"gateway: warning: {m}", file=sys.stderr)
        if problems.errors or (args.strict and problems.missing):
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
            serving = serve_mock(
                mock_cfg,
                host=args.host,
                port=args.port,
                api_key=args.api_key,
                record=args.record,
                responses=not args.no_responses,
            )
            _run(serving)
        except OSError as e:
            print(f"gateway mock: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
            return 1
        return 0

    if args.workers is not None and args.workers < 1:
        print(f"gateway serve: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        if args.config:
            _, served, problems = config.check(args.config)
            problems.raise_if_any()
            assert served is not None
            cfg = served
            if args.supervisor_fd is None:  # the supervisor has said it for its workers
                for m in problems.warnings:
                    logging.getLogger("gateway").warning("%s", m)
        else:
            cfg = config.from_env()
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
        from gateway.server.workers import listen_hint

        print(f"gateway: cannot listen: {e.strerror}{listen_hint(e)}", file=sys.stderr)
        return 1
    return 0


def _log_as(who: str, level: str) -> None:
    """Log lines of a supervisor and its workers say which process speaks."""
    logline.configure(level, who=who, fmt=os.environ[logline.FORMAT_ENV])
