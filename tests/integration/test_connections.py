"""Client connections over raw sockets: slow heads and bodies get a 408 and are closed,
idle connections are closed, a process past its connection cap closes new connections
as it accepts them, streams outlast every read timeout; ``Expect: 100-continue`` and
``Content-Encoding`` are answered as HTTP says."""

from __future__ import annotations

import gzip
import json
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Proc, metric, serve_config

CHAT = "/v1/chat/completions"
BODY = b'{"model":"mock/mock-chat","messages":[{"role":"user","content":"hi"}]}'
# Generous bounds on waits for the gateway's timers (1-5 s here): never a timing assertion.
WAIT_S = 20.0
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A gateway with read timeouts of a second or so; the "slow" mock's answers take ~3 s."""
    config = {
        "server": {
            "max_body_bytes": MAX_BODY,
            "header_timeout_s": 1,
            "keepalive_timeout_s": 1.5,
            "body_timeout_s": 30,
            "body_min_bytes_per_s": 1000,
            "access_log": False,
        },
        "default_provider": "mock",
        "providers": {
            "mock": {"dialect": "mock"},
            "slow": {"dialect": "mock", "mock": {"tokens": 25, "itl_ms": 120}},
        },
    }
    proc = serve_config(config, tmp_path_factory.mktemp("tight"))
    yield proc
    proc.stop()


def connect(proc: Proc) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proc.port))
    s.settimeout(WAIT_S)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the gateway sends until it closes (bounded by the socket's timeout)."""
    out = b""
    for _ in range(10_000):
        data = s.recv(65536)
        if not data:
            return out
        out += data
    raise AssertionError("the gateway kept sending")


def read_answer(s: socket.socket, data: bytes = b"") -> tuple[bytes, dict[str, str], bytes]:
    """One answer with a Content-Length (``data``: what was already received of it):
    (status line, headers, body)."""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = s.recv(65536)
        assert chunk, "closed in the middle of an answer"
        body += chunk
    return status.encode(), headers, body


def assert_error(body: bytes, *, code: str, mentions: str = "") -> None:
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code, err
    assert mentions.lower() in err["message"].lower(), err


def post_head(*, length: int, extra: str = "") -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
    ).encode()


# Read timeouts


def test_connections_incomplete_head_is_408_and_closed(tight: Proc) -> None:
    with connect(tight) as s:
        s.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\n".encode())
        data = read_until_closed(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), data
    assert b"Connection: close" in head
    assert_error(body, code="request_timeout", mentions="headers")
    assert metric(tight, "gateway_request_read_timeouts_total", phase="head") >= 1


def test_connections_trickled_head_is_cut_by_the_header_timeout(tight: Proc) -> None:
    """One byte every 0.2 s never completes a head in time, however long it goes on."""
    head = f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nX-Padding: {'a' * 200}\r\n\r\n".encode()
    with connect(tight) as s:
        s.settimeout(0.2)
        answer = b""
        for i in range(len(head)):  # bounded: 40+ s of trickle, cut after about 1
            try:
                s.sendall(head[i : i + 1])
                answer = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            break
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_connections_idle_connection_closed_without_an_answer(tight: Proc) -> None:
    with connect(tight) as s:  # never sends
        assert read_until_closed(s) == b""
    with connect(tight) as s:  # idle after an answer
        s.sendall(post_head(length=len(BODY)) + BODY)
        status, _, _ = read_answer(s)
        assert status.startswith(b"HTTP/1.1 200 ")
        assert read_until_closed(s) == b""


def test_connections_keepalive_connection_serves_after_a_pause(tight: Proc) -> None:
    with connect(tight) as s:
        for _ in range(3):
            s.sendall(post_head(length=len(BODY)) + BODY)
            status, _, _ = read_answer(s)
            assert status.startswith(b"HTTP/1.1 200 ")
            time.sleep(0.5)  # under keepalive_timeout_s


def test_connections_trickled_body_is_408_and_closed(tight: Proc) -> None:
    """4 bytes a second against a minimum of 1000: cut after the 5 s grace, not after the
    30 s total, and long before the body would be complete."""
    with connect(tight) as s:
        s.sendall(post_head(length=len(BODY)))
        s.settimeout(0.25)
        answer = b""
        for i in range(len(BODY)):  # bounded: ~18 s if never cut
            try:
                s.sendall(BODY[i : i + 1])
                answer = s.recv(65536)
            except TimeoutError:
                continue
            break
        s.settimeout(WAIT_S)
        status, headers, body = read_answer(s, answer)
    assert status.startswith(b"HTTP/1.1 408 "), body
    assert headers["connection"] == "close"
    assert_error(body, code="request_timeout", mentions="body")
    assert metric(tight, "gateway_request_read_timeouts_total", phase="body") >= 1


def test_connections_stream_outlasts_every_read_timeout(tight: Proc) -> None:
    """A stream of ~3 s, longer than the header, keep-alive and body grace timeouts,
    ends with [DONE]: the timeouts bound reading requests, not writing answers."""
    body = {"model": "slow/mock-chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=WAIT_S) as client:
        with client.stream("POST", tight.url + CHAT, json=body) as r:
            assert r.status_code == 200
            frames = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert frames[-1] == "data: [DONE]"
        assert len(frames) > 20
        assert client.get(tight.url + "/health").status_code == 200  # the same connection after it


# The connection cap


def test_connections_past_the_cap_are_closed_at_accept_and_counted(tmp_path: Path) -> None:
    config = {"server": {"max_connections": 4, "access_log": False}, "providers": {"mock": {"dialect": "mock"}}}
    proc = serve_config(config, tmp_path)
    try:
        held = [connect(proc) for _ in range(4)]
        for s in held:  # each has been accepted and counted
            s.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert read_answer(s)[0].startswith(b"HTTP/1.1 200 ")
        with connect(proc) as extra:
            assert read_until_closed(extra) == b""  # closed at once, nothing read
        for s in held:
            s.close()
        refused = 0.0
        for _ in range(100):  # the held connections' slots free as their closes arrive
            try:
                refused = metric(proc, "gateway_connections_refused_total")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert refused == 1
        assert metric(proc, "gateway_open_connections") >= 1  # the scrape's own
        assert "at the connection cap (server.max_connections = 4)" in proc.log.read_text()
    finally:
        proc.stop()


# Expect: 100-continue


def test_expect_100_continue_is_answered_then_the_body_served(tight: Proc) -> None:
    with connect(tight) as s:
        s.sendall(post_head(length=len(BODY), extra="Expect: 100-continue\r\n"))
        assert s.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(BODY)
        status, _, body = read_answer(s)
    assert status.startswith(b"HTTP/1.1 200 "), body


def test_expect_100_continue_over_the_limit_is_413_and_closed(tight: Proc) -> None:
    with connect(tight) as s:
        s.sendall(post_head(length=MAX_BODY + 1, extra="Expect: 100-continue\r\n"))
        status, headers, body = read_answer(s)
    assert status.startswith(b"HTTP/1.1 413 "), body
    assert headers["connection"] == "close"
    assert_error(body, code="request_too_large")


def test_expect_other_than_100_continue_is_417(tight: Proc) -> None:
    with connect(tight) as s:
        s.sendall(post_head(length=len(BODY), extra="Expect: something-else\r\n"))
        status, headers, body = read_answer(s)
    assert status.startswith(b"HTTP/1.1 417 "), body
    assert headers["connection"] == "close"
    assert_error(body, code="expectation_failed", mentions="something-else")


# Content-Encoding


def send_encoded(proc: Proc, body: bytes, encoding: str) -> tuple[bytes, dict[str, str], bytes]:
    with connect(proc) as s:
        s.sendall(post_head(length=len(body), extra=f"Content-Encoding: {encoding}\r\n") + body)
        return read_answer(s)


@pytest.mark.parametrize(
    ("compress", "encoding"),
    [(gzip.compress, "gzip"), (zlib.compress, "deflate"), (lambda b: b, "identity")],
)
def test_content_encoding_valid_body_is_served(tight: Proc, compress: object, encoding: str) -> None:
    assert callable(compress)
    status, _, body = send_encoded(tight, compress(BODY), encoding)
    assert status.startswith(b"HTTP/1.1 200 "), body


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_content_encoding_body_not_so_encoded_is_400(tight: Proc, encoding: str) -> None:
    status, headers, body = send_encoded(tight, BODY, encoding)
    assert status.startswith(b"HTTP/1.1 400 "), body
    assert headers["connection"] == "close"
    assert_error(body, code="invalid_content_encoding", mentions="Content-Encoding")


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "x-gzip", "xyz"])
def test_content_encoding_unsupported_is_415_on_http_1_1(tight: Proc, encoding: str) -> None:
    status, headers, body = send_encoded(tight, BODY, encoding)
    assert status.startswith(b"HTTP/1.1 415 "), (status, body)
    assert headers["connection"] == "close"
    assert_error(body, code="unsupported_content_encoding", mentions="gzip, deflate or identity")


def test_content_encoding_gzip_bomb_is_413_and_closed(tight: Proc) -> None:
    """60 MiB of JSON whitespace, under 64 KiB compressed: refused once 64 KiB inflated."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = b" " * (1 << 20)
    bomb = deflater.compress(b"{") + b"".join(deflater.compress(block) for _ in range(60)) + deflater.flush()
    assert len(bomb) < MAX_BODY
    status, headers, body = send_encoded(tight, bomb, "gzip")
    assert status.startswith(b"HTTP/1.1 413 "), body
    assert headers["connection"] == "close"
    assert_error(body, code="request_too_large")
    assert httpx.get(tight.url + "/health").status_code == 200
