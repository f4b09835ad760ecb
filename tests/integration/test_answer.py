"""The relay's answers written as one block of bytes (``gateway.server.answer``): HTTP
framing checked on a raw socket, since an HTTP client library would forgive mistakes:
keep-alive and pipelining, ``Connection: close``, HTTP/1.0, headers and lengths."""

from __future__ import annotations

import json
import socket
from typing import BinaryIO

from tests.conftest import Proc

BODY = b'{"model":"up/gpt-x","messages":[{"role":"user","content":"hi"}]}'


def request(*, version: str = "1.1", extra: str = "") -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n{extra}\r\n"
    ).encode() + BODY


def read_response(f: BinaryIO) -> tuple[str, dict[str, str], bytes]:
    status = f.readline().decode().rstrip("\r\n")
    headers: dict[str, str] = {}
    while True:
        line = f.readline().decode()
        assert line, "connection closed inside the headers"
        if line == "\r\n":
            break
        name, _, value = line.rstrip("\r\n").partition(": ")
        assert name.lower() not in headers, f"header {name} twice"
        headers[name.lower()] = value
    body = f.read(int(headers["content-length"]))
    return status, headers, body


def connect(gateway: Proc) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def test_keep_alive_pipelined_answers_are_framed_exactly(gateway: Proc) -> None:
    with connect(gateway) as s:
        s.sendall(request() * 3)  # three at once: each answer must end exactly where it says
        f = s.makefile("rb")
        for _ in range(3):
            status, headers, body = read_response(f)
            assert status == "HTTP/1.1 200 OK"
            assert headers["content-type"] == "application/json"
            assert headers["x-bifrost-provider"] == "up"
            assert headers["content-length"] == str(len(body))
            assert headers["date"].endswith(" GMT")
            assert "server" in headers
            assert "connection" not in headers
            answer = json.loads(body)
            assert answer["object"] == "chat.completion"
            assert answer["extra_fields"]["provider"] == "up"
        # Still open: a fourth request on the same connection is answered.
        s.sendall(request())
        assert read_response(f)[0] == "HTTP/1.1 200 OK"


def test_connection_close_is_honoured(gateway: Proc) -> None:
    with connect(gateway) as s:
        s.sendall(request(extra="Connection: close\r\n"))
        f = s.makefile("rb")
        status, headers, body = read_response(f)
        assert status == "HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        json.loads(body)
        assert f.read() == b""  # the gateway closed the connection


def test_http_1_0_gets_a_1_0_answer(gateway: Proc) -> None:
    with connect(gateway) as s:
        s.sendall(request(version="1.0"))
        f = s.makefile("rb")
        status, _, body = read_response(f)
        assert status == "HTTP/1.0 200 OK"
        json.loads(body)
        assert f.read() == b""  # HTTP/1.0 without keep-alive: closed after the answer


def test_http_1_0_keep_alive(gateway: Proc) -> None:
    with connect(gateway) as s:
        s.sendall(request(version="1.0", extra="Connection: keep-alive\r\n"))
        f = s.makefile("rb")
        status, headers, _ = read_response(f)
        assert status == "HTTP/1.0 200 OK"
        assert headers["connection"].lower() == "keep-alive"
        s.sendall(request(version="1.0", extra="Connection: keep-alive\r\n"))
        assert read_response(f)[0] == "HTTP/1.0 200 OK"


def test_relayed_upstream_headers_come_once(gateway: Proc) -> None:
    with connect(gateway) as s:
        s.sendall(request())
        _, headers, _ = read_response(s.makefile("rb"))
        # The mock sends its request id and rate-limit headers; they are relayed, renamed.
        assert headers["x-upstream-request-id"]
        assert "x-ratelimit-limit-requests" in headers
        # x-request-id is the gateway's own (the upstream's is renamed above).
        assert headers["x-request-id"] and headers["x-request-id"] != headers["x-upstream-request-id"]


def test_request_id_is_honoured_or_made(gateway: Proc) -> None:
    with connect(gateway) as s:
        f = s.makefile("rb")
        s.sendall(request(extra="x-request-id: trace-42.a:b_c\r\n"))
        assert read_response(f)[1]["x-request-id"] == "trace-42.a:b_c"
        s.sendall(request(extra="x-request-id: bad id with spaces\r\n"))
        made = read_response(f)[1]["x-request-id"]
        assert made != "bad id with spaces" and " " not in made
        s.sendall(request())
        other = read_response(f)[1]["x-request-id"]
        assert other != made
