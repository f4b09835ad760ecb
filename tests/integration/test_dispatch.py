"""The dispatcher and the protocol's error hook, served for real on 127.0.0.1: the
dispatcher does not catch (one frame less a request), so every error a handler raises
must still become an OpenAI error body, and the connection stay usable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.server.dispatch import Dispatcher
from gateway.server.protocol import Server

SECRET = "a detail that must stay in the log"


async def ok(request: web.BaseRequest) -> web.StreamResponse:
    """The client's port: the same port twice means the same connection."""
    assert request.transport is not None
    return web.Response(text=str(request.transport.get_extra_info("peername")[1]))


async def bug(request: web.BaseRequest) -> web.StreamResponse:
    raise RuntimeError(SECRET)


async def times_out(request: web.BaseRequest) -> web.StreamResponse:
    """A timeout no boundary classified: aiohttp answers a handler's TimeoutError itself."""
    async with asyncio.timeout(0.01):
        await asyncio.sleep(10)
    raise AssertionError("not reached")


async def refused(request: web.BaseRequest) -> web.StreamResponse:
    raise InvalidRequest("messages: required", param="messages", code="missing")


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    routes = {
        "/ok": {"GET": ok},
        "/bug": {"GET": bug, "PUT": bug},
        "/refused": {"POST": refused},
        "/slow": {"GET": times_out},
    }
    server = Server(Dispatcher(routes, prefixes={"/pre/": {"GET": ok}}), handler_cancellation=True, access_log=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = await asyncio.get_running_loop().create_server(server, sock=sock)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    listener.close()
    await server.shutdown(1.0)


def test_errors_become_openai_bodies_on_a_kept_connection(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(errors_on_a_kept_connection(caplog))


async def errors_on_a_kept_connection(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as base_url:
        await requests(base_url, caplog)


async def requests(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    connector = aiohttp.TCPConnector(limit=1)  # one connection: every answer on it
    async with aiohttp.ClientSession(connector=connector) as s:
        async with s.get(base_url + "/ok") as r:
            port = await r.text()
        async with s.get(base_url + "/bug") as r:
            assert r.status == 500
            body = await r.json()
            assert body["error"]["code"] == "internal_error"
            assert SECRET not in await r.text()
        assert SECRET in caplog.text  # logged, with the request named
        assert "GET /bug" in caplog.text

        async with s.post(base_url + "/refused") as r:
            assert r.status == 400
            err = (await r.json())["error"]
            assert (err["param"], err["code"], err["type"]) == ("messages", "missing", "invalid_request_error")

        async with s.get(base_url + "/nowhere") as r:
            assert r.status == 404
            assert "/nowhere" in (await r.json())["error"]["message"]

        async with s.delete(base_url + "/bug") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "GET, PUT"

        async with s.get(base_url + "/pre/anything") as r:
            assert r.status == 200
        async with s.post(base_url + "/pre/anything") as r:  # a prefix route's methods too
            assert r.status == 405
            assert r.headers["Allow"] == "GET"
            assert set((await r.json())["error"]) == {"message", "type", "param", "code"}
        async with s.get(base_url + "/pre") as r:  # the prefix without its variable part
            assert r.status == 404
        async with s.get(base_url + "/ok") as r:
            assert await r.text() == port  # the one connection survived every error


def test_handler_timeout_is_a_504_openai_error(caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp turns a TimeoutError out of a handler into handle_error(request, 504):
    the gateway answers it as a 504 with an OpenAI error body, not as an internal error."""
    asyncio.run(handler_timeout(caplog))


async def handler_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as base_url, aiohttp.ClientSession() as s:
        async with s.get(base_url + "/slow") as r:
            assert r.status == 504
            assert r.content_type == "application/json"
            err = (await r.json())["error"]
            assert (err["type"], err["code"]) == ("server_error", "timeout")
        assert "GET /slow" in caplog.text  # logged, with the request named
