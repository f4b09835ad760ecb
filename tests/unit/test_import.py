"""The package imports cheaply and the CLI describes itself."""

from __future__ import annotations

import json
import subprocess
import sys


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=30, check=False)


def test_import_gateway_does_not_load_aiohttp_or_uvloop() -> None:
    code = (
        "import json, sys\n"
        "import gateway\n"
        "print(json.dumps({'version': gateway.__version__, "
        "'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'uvloop'))}))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["heavy"] == []
    assert data["version"]


def test_import_config_and_codec_do_not_load_aiohttp_or_uvloop() -> None:
    code = (
        "import sys\n"
        "import gateway.cli, gateway.config, gateway.codec\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'uvloop')))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_cli_help_lists_commands() -> None:
    result = run_python("-m", "gateway", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "mock", "check"):
        assert command in result.stdout


def test_import_cli_version() -> None:
    import gateway

    result = run_python("-m", "gateway", "--version")
    assert result.returncode == 0, result.stderr
    assert gateway.__version__ in result.stdout


def test_import_cli_serve_help_lists_options() -> None:
    result = run_python("-m", "gateway", "serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--host", "--port"):
        assert option in result.stdout


def test_import_cli_mock_help_lists_options() -> None:
    result = run_python("-m", "gateway", "mock", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--tokens", "--ttft-ms", "--itl-ms", "--error-rate", "--reset-rate", "--record"):
        assert option in result.stdout


def test_import_cli_without_command_fails_with_help() -> None:
    result = run_python("-m", "gateway")
    assert result.returncode == 2
    assert "serve" in result.stdout


def test_a_gateway_without_redis_never_imports_redis_py() -> None:
    """redis-py costs ~0.15 s and ~7 MB of RSS: only a gateway with a Redis store loads it."""
    code = (
        "import asyncio, sys\n"
        "from gateway.config import from_env\n"
        "from gateway.server.app import Gateway\n"
        "import gateway.server.mock\n"
        "async def main():\n"
        "    gw = Gateway(from_env({}))\n"
        "    await gw.start(host='127.0.0.1', port=0)\n"
        "    await gw.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_settle_heap_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a child process: the test process's own collector stays as it is.
    code = (
        "import gc\n"
        "from gateway.server.protocol import YOUNG_GC_THRESHOLD, settle_heap\n"
        "keep = [[i] for i in range(50_000)]\n"
        "assert gc.get_freeze_count() == 0\n"
        "settle_heap()\n"
        "assert gc.get_freeze_count() >= 50_000, gc.get_freeze_count()\n"
        "assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
