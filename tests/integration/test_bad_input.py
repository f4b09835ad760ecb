"""Every malformed or invalid request: a 4xx with an OpenAI error body naming the
problem; the server keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc

CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
OK_MSG = '"messages":[{"role":"user","content":"hi"}]'


def assert_error(r: httpx.Response, status: int, *, param: str | None = None, mentions: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param
    assert mentions.lower() in err["message"].lower()


CASES = [
    (CHAT, "", None, "empty"),
    (CHAT, "{not json", None, "not valid json"),
    (CHAT, '["model"]', None, "expected `object`"),
    (CHAT, '{"messages":[{"role":"user","content":"hi"}]}', "model", "model"),
    (CHAT, '{"model":"mock/m"}', "messages", "messages"),
    (CHAT, '{"model":"mock/m","messages":[]}', "messages", "length >= 1"),
    (CHAT, '{"model":42,' + OK_MSG + "}", "model", "str"),
    (CHAT, '{"model":"mock/m","messages":[{"role":"robot","content":"x"}]}', "messages[0].role", "robot"),
    (CHAT, '{"model":"mock/m","messages":[{"content":"x"}]}', "messages[0].role", "role"),
    (CHAT, '{"model":"mock/m","messages":[{"role":"user","content":7}]}', "messages[0].content", "int"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"temperature":2.5}', "temperature", "<= 2.0"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"temperature":"hot"}', "temperature", "float"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"frequency_penalty":-2.1}', "frequency_penalty", ">= -2.0"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"presence_penalty":9}', "presence_penalty", "<= 2.0"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"top_p":1.5}', "top_p", "<= 1.0"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"max_tokens":0}', "max_tokens", ">= 1"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"n":0}', "n", ">= 1"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"stream":"yes"}', "stream", "bool"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"tool_choice":"always"}', "tool_choice", "always"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"reasoning_effort":"extreme"}', "reasoning_effort", "extreme"),
    (
        CHAT,
        '{"model":"mock/m",' + OK_MSG + ',"tools":[{"type":"function","function":{}}]}',
        "tools[0].function.name",
        "name",
    ),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"stop":["a","b","c","d","e"]}', "stop", "length <= 4"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"fallbacks":"up/x"}', "fallbacks", "array"),
    (CHAT, '{"model":"mock/m",' + OK_MSG + ',"mock":{"tokens":-1}}', "mock", "mock"),
    (TEXT, '{"model":"mock/m"}', "prompt", "prompt"),
    (TEXT, '{"model":"mock/m","prompt":[]}', "prompt", "length >= 1"),
    (TEXT, '{"model":"mock/m","prompt":["a",1]}', "prompt", "not a mix"),
    (TEXT, '{"model":"mock/m","prompt":{"text":"a"}}', "prompt", "expected"),
    (TEXT, '{"model":"mock/m","prompt":"a","logprobs":9}', "logprobs", "<= 5"),
    (TEXT, '{"model":"mock/m","prompt":"a","best_of":0}', "best_of", ">= 1"),
]


@pytest.mark.parametrize(("path", "body", "param", "mentions"), CASES)
def test_bad_input_is_400_naming_the_field(
    gateway: Proc, path: str, body: str, param: str | None, mentions: str
) -> None:
    assert_error(httpx.post(gateway.url + path, content=body), 400, param=param, mentions=mentions)


def test_bad_input_unknown_provider_without_default(unrouted: Proc) -> None:
    r = httpx.post(unrouted.url + CHAT, content='{"model":"nope/gpt",' + OK_MSG + "}")
    assert_error(r, 404, param="model", mentions="no provider 'nope' is configured; configured providers: mock")
    r = httpx.post(unrouted.url + CHAT, content='{"model":"bare",' + OK_MSG + "}")
    assert_error(r, 404, param="model", mentions="no default provider")
    assert r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(unrouted.url + CHAT, content='{"model":"mock/m",' + OK_MSG + ',"fallbacks":["x/y"]}')
    assert_error(r, 404, param="fallbacks[0]", mentions="no provider 'x'")


def test_bad_input_oversize_body_is_413(gateway: Proc) -> None:
    big = '{"model":"mock/m","messages":[{"role":"user","content":"' + "a" * 70_000 + '"}]}'
    assert_error(httpx.post(gateway.url + CHAT, content=big), 413, mentions="exceeds the limit")


def test_bad_input_oversize_chunked_body_is_413(gateway: Proc) -> None:
    def parts() -> Iterator[bytes]:
        yield b'{"model":"mock/m","messages":[{"role":"user","content":"'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}]}'

    r = httpx.post(gateway.url + CHAT, content=parts())
    assert "content-length" not in r.request.headers
    assert_error(r, 413, mentions="exceeds the limit")


def test_bad_input_oversize_header_is_400(gateway: Proc) -> None:
    r = httpx.get(gateway.url + "/health", headers={"x-long": "a" * 10_000})
    assert_error(r, 400, mentions="malformed HTTP request")


def test_bad_input_garbage_http_gets_json_error(gateway: Proc) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(b"NOT-HTTP\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert b'"type":"invalid_request_error"' in answer


@pytest.mark.parametrize("path", ["/v2/chat/completions", "/v1/chat/completion", "/v1/chat/completions/", "/"])
def test_bad_input_unknown_path_is_404(gateway: Proc, path: str) -> None:
    assert_error(httpx.post(gateway.url + path, content="{}"), 404, mentions=path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", CHAT, "POST"), ("DELETE", TEXT, "POST"), ("POST", "/v1/models", "GET"), ("POST", "/health", "GET, HEAD")],
)
def test_bad_input_wrong_method_is_405(gateway: Proc, method: str, path: str, allow: str) -> None:
    r = httpx.request(method, gateway.url + path)
    assert_error(r, 405, mentions=method)
    assert r.headers["allow"] == allow


def test_bad_input_server_keeps_serving(gateway: Proc) -> None:
    for path, body, _, _ in CASES:
        assert httpx.post(gateway.url + path, content=body).status_code == 400
    r = httpx.post(gateway.url + CHAT, content='{"model":"mock/m",' + OK_MSG + "}")
    assert r.status_code == 200
    assert gateway.alive()


def test_bad_input_oversize_body_in_one_read_before_its_end_is_413(gateway: Proc) -> None:
    # The whole oversize body arrives in one read, its chunked terminator later: the
    # first read alone must be checked against the limit.
    body = b'{"model":"mock/m","messages":[{"role":"user","content":"' + b"a" * 70_000 + b'"}]}'
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(head + b"%x\r\n%s\r\n" % (len(body), body))
        time.sleep(0.3)
        s.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
    assert answer.split(b"\r\n")[0].endswith(b"413 Request Entity Too Large"), answer[:200]
