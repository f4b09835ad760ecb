"""Every malformed or invalid request: a 4xx with an OpenAI error body naming the
problem; the server keeps serving."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Proc, gateway_config, serve_config

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


def exchange(port: int, *packets: bytes, pause_s: float = 0.0) -> bytes:
    """Sends ``packets`` on one connection (``pause_s`` apart) and reads until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for packet in packets:
            s.sendall(packet)
            time.sleep(pause_s)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def answer_parts(answer: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """(status line, headers with lower-case names, body) of one answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status.encode(), {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}, body


def access_line(proc: Proc, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in proc.log.read_text().splitlines():
            if line.startswith("{") and f'"request_id":"{request_id}"' in line:
                found: dict[str, Any] = json.loads(line)
                return found
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


SECRET = "sk-client-secret-0123456789"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"NOT-HTTP\r\n\r\n", "Invalid method encountered"),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\x01\r\n\r\n",
            "Invalid header value char (header Authorization)",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() * 400 + b"\r\n\r\n",
            "Got more than",
        ),
        (b"GET /health?key=" + SECRET.encode() + b"\x7f HTTP/1.1\r\nHost: x\r\n\r\n", "invalid request target"),
    ],
    ids=["garbage", "control-char", "too-long", "bad-target"],
)
def test_bad_input_malformed_http_is_an_http11_openai_error_saying_what(gateway: Proc, raw: bytes, says: str) -> None:
    status, headers, body = answer_parts(exchange(gateway.port, raw))
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["connection"] == "close" and headers["content-type"].startswith("application/json")
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "malformed_http", None)
    assert err["message"].startswith("malformed HTTP request: " + says), err["message"]
    assert SECRET[:12] not in body.decode()
    line = access_line(gateway, headers["x-request-id"])
    assert (line["status"], line["error"]) == (400, "invalid_request_error")
    assert line["malformed"] == err["message"].removeprefix("malformed HTTP request: ")
    assert SECRET[:12] not in json.dumps(line) and SECRET[:12] not in gateway.log.read_text()


def chat_request(*lines: bytes, body: bytes = b'{"model":"mock/m",' + OK_MSG.encode() + b"}") -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


# As the google-genai SDK sends them (through pydantic-ai): one name in two spellings.
TWO_AGENTS = (b"User-Agent: AsyncGeminiNextGenAPIClient/Python 1.71.0", b"user-agent: google-genai-sdk/1.71.0")


def test_bad_input_repeated_user_agent_is_served(gateway: Proc) -> None:
    status, headers, body = answer_parts(exchange(gateway.port, chat_request(*TWO_AGENTS)))
    assert status == b"HTTP/1.1 200 OK", body
    assert json.loads(body)["object"] == "chat.completion"
    # Where a next request on this connection would begin is not known for certain.
    assert headers["connection"] == "close"


def test_bad_input_repeated_harmless_headers_in_a_head_of_many_packets_are_served(gateway: Proc) -> None:
    raw = chat_request(*TWO_AGENTS, b"Content-Type: application/json", b"Content-Type: application/json")
    packets = [raw[i : i + 40] for i in range(0, len(raw), 40)]
    status, _, body = answer_parts(exchange(gateway.port, *packets, pause_s=0.02))
    assert status == b"HTTP/1.1 200 OK", body


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ((b"Content-Length: 5",), "Duplicate Content-Length"),
        ((b"Host: y",), "Duplicate 'Host' header found"),
        ((b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), "Transfer-Encoding can't be present"),
        ((*TWO_AGENTS, b"Host: y"), "Duplicate 'Host' header found"),
    ],
    ids=["content-length", "host", "transfer-encoding", "user-agent-and-host"],
)
def test_bad_input_repeated_framing_or_routing_header_is_400(
    gateway: Proc, lines: tuple[bytes, ...], says: str
) -> None:
    status, headers, body = answer_parts(exchange(gateway.port, chat_request(*lines)))
    assert status == b"HTTP/1.1 400 Bad Request" and headers["connection"] == "close"
    err = json.loads(body)["error"]
    assert err["code"] == "malformed_http" and says in err["message"], err
    assert access_line(gateway, headers["x-request-id"])["malformed"].startswith(says)


def test_bad_input_repeated_user_agent_on_a_kept_connection_is_400(gateway: Proc) -> None:
    # Only a connection's first head can be read again (see docs/limits.md).
    answer = exchange(gateway.port, chat_request(), chat_request(*TWO_AGENTS), pause_s=0.3)
    first, _, rest = answer.partition(b"HTTP/1.1 400 ")
    assert first.startswith(b"HTTP/1.1 200 OK") and b"Duplicate 'User-Agent' header found" in rest


@pytest.mark.parametrize(
    "path", ["/v2/chat/completions", "/v1/chat/completion", "/v1/chat/completions/", "/", "/genai/v1beta/model"]
)
def test_bad_input_unknown_path_is_404(gateway: Proc, path: str) -> None:
    assert_error(httpx.post(gateway.url + path, content="{}"), 404, mentions=path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", CHAT, "POST"),
        ("DELETE", TEXT, "POST"),
        ("POST", "/v1/models", "GET"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_bad_input_wrong_method_is_405(gateway: Proc, method: str, path: str, allow: str) -> None:
    r = httpx.request(method, gateway.url + path)
    assert_error(r, 405, mentions=method)
    assert r.headers["allow"] == allow


def test_bad_input_wrong_method_on_a_prefix_route_is_405_in_its_dialect(gateway: Proc) -> None:
    """A GenAI SDK route (served by prefix) answers in Gemini's error shape, with the
    OpenAI fields a gateway client looks for."""
    r = httpx.request("GET", gateway.url + "/genai/v1beta/models/mock/m:generateContent")
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
    err = r.json()["error"]
    assert err["code"] == 405 and err["status"] and "GET" in err["message"] and err["type"]


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


# Bodies msgspec cannot judge alone: invalid UTF-8, deep nesting, a read key given twice.
# Every JSON route, each answering in its own dialect; the admin API needs a token.

ADMIN_TOKEN = "adm-bad-input-0123456789abcdef"


@pytest.fixture(scope="module")
def routes_gw(upstream: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = gateway_config(upstream, client="pool")
    config["auth"] = {"required": False, "admin_token": ADMIN_TOKEN}
    proc = serve_config(config, tmp_path_factory.mktemp("bad-input-routes"), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    yield proc
    proc.stop()


# (route, path, headers, a valid body with {value} where any JSON value goes: an unknown
# field, forwarded as bytes; on the admin API, whose fields are all known, a list item)
ROUTES: list[tuple[str, str, dict[str, str], str]] = [
    ("chat", CHAT, {}, '{"model":"mock/m","messages":[{"role":"user","content":"hi"}],"x":{value}}'),
    ("text", TEXT, {}, '{"model":"mock/m","prompt":"hi","x":{value}}'),
    (
        "async",
        CHAT,
        {"x-bf-async": "true"},
        '{"model":"mock/m","messages":[{"role":"user","content":"hi"}],"x":{value}}',
    ),
    (
        "anthropic",
        "/anthropic/v1/messages",
        {},
        '{"model":"mock/m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":{value}}',
    ),
    (
        "genai",
        "/genai/v1beta/models/mock/m:generateContent",
        {},
        '{"contents":[{"parts":[{"text":"hi"}]}],"x":{value}}',
    ),
    ("admin", "/api/keys", {"Authorization": f"Bearer {ADMIN_TOKEN}"}, '{"name":"k-{n}","deny_models":[{value}]}'),
]
ROUTE_IDS = [r[0] for r in ROUTES]


def body_of(template: str, value: str | bytes, *, n: int = 0) -> bytes:
    v = value if isinstance(value, bytes) else value.encode()
    return template.replace("{n}", str(n)).encode().replace(b"{value}", v)


def error_of(route: str, r: httpx.Response) -> dict[str, Any]:
    """The error object of any dialect, with the status checked against it."""
    assert r.headers["content-type"].startswith("application/json"), r.text
    data = r.json()
    if route == "anthropic":
        assert data["type"] == "error"
    err: dict[str, Any] = data["error"]
    if route == "genai":
        assert err["code"] == r.status_code and err["status"] == "INVALID_ARGUMENT"
    else:
        assert set(err) >= {"message", "type", "param", "code"}
    return err


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_bad_input_valid_bodies_of_the_routes_pass(
    routes_gw: Proc, route: tuple[str, str, dict[str, str], str]
) -> None:
    # The positive control of the cases below: the same bodies, well-formed, are served.
    _, path, headers, template = route
    r = httpx.post(routes_gw.url + path, content=body_of(template, '"ok"', n=1), headers=headers, timeout=10)
    assert r.status_code in (200, 201, 202), r.text


@pytest.mark.parametrize(
    "value",
    [b'"\xff"', b'"caf\xc3"', b'"\xed\xa0\x80"', b'{"k\xe9y":1}'],
    ids=["ff", "truncated", "surrogate", "in-a-key"],
)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_bad_input_invalid_utf8_is_400(
    routes_gw: Proc, route: tuple[str, str, dict[str, str], str], value: bytes
) -> None:
    name, path, headers, template = route
    r = httpx.post(routes_gw.url + path, content=body_of(template, value, n=2), headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert "not valid utf-8" in error_of(name, r)["message"].lower()


def test_bad_input_invalid_utf8_in_a_read_string_is_400(gateway: Proc) -> None:
    # The issue's own reproduction: the byte inside a message, the typed part.
    body = b'{"model":"mock/x","messages":[{"role":"user","content":"\xff"}]}'
    r = httpx.post(gateway.url + CHAT, content=body)
    assert_error(r, 400, mentions="not valid UTF-8: byte 0xff at offset 56")
    assert httpx.post(gateway.url + CHAT, content='{"model":"mock/m",' + OK_MSG + "}").status_code == 200


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1000, 5000])
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_bad_input_deep_nesting_is_400(
    routes_gw: Proc, route: tuple[str, str, dict[str, str], str], depth: int
) -> None:
    # In an unknown field: the bytes the gateway forwards without decoding them.
    name, path, headers, template = route
    r = httpx.post(routes_gw.url + path, content=body_of(template, nested(depth - 1), n=3), headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    err = error_of(name, r)
    if name == "admin":  # every field typed: the first '[' where a string goes is the error
        assert "expected `str`, got `array`" in err["message"].lower()
        return
    assert "nested too deeply" in err["message"]
    if name != "genai":
        assert err["code"] == "nesting_too_deep"


def test_bad_input_real_nesting_and_brackets_in_strings_pass(gateway: Proc) -> None:
    ok = '{"model":"mock/m",' + OK_MSG + ',"x":' + nested(200) + "}"
    assert httpx.post(gateway.url + CHAT, content=ok).status_code == 200
    text = "[" * 3000 + '\\\\\\"{' * 500  # brackets, escaped backslashes and quotes in a string
    in_string = '{"model":"mock/m","messages":[{"role":"user","content":"' + text + '"}]}'
    assert httpx.post(gateway.url + CHAT, content=in_string).status_code == 200
    objects = '{"model":"mock/m",' + OK_MSG + ',"x":' + '{"a":' * 2000 + "1" + "}" * 2000 + "}"
    r = httpx.post(gateway.url + CHAT, content=objects)
    assert_error(r, 400, mentions="nested too deeply")


@pytest.mark.parametrize(
    ("dup", "param"),
    [
        ('"model":"mock/a","model":"mock/b"', "model"),
        ('"model":"mock/a","mod\\u0065l":"mock/b"', "model"),  # escaped: the same key to a decoder
        ('"model":"mock/a","stream":false,"stream":true', "stream"),
        ('"model":"mock/a","fallbacks":["mock/b"],"fallbacks":[]', "fallbacks"),
        ('"model":"mock/a","max_tokens":5,"max_tokens":100000', "max_tokens"),
    ],
    ids=["model", "escaped-model", "stream", "fallbacks", "max_tokens"],
)
@pytest.mark.parametrize("route", ["chat", "text", "async", "anthropic"])
def test_bad_input_repeated_read_key_is_400(routes_gw: Proc, route: str, dup: str, param: str) -> None:
    name, path, headers, template = next(r for r in ROUTES if r[0] == route)
    body = template.replace('"model":"mock/m"', dup)
    r = httpx.post(routes_gw.url + path, content=body_of(body, "1"), headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    err = error_of(name, r)
    assert err["param"] == param and err["code"] == "duplicate_key"
    assert f"'{param}' is given more than once" in err["message"]


def test_bad_input_repeated_read_key_genai_is_400(routes_gw: Proc) -> None:
    body = '{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{},"generationConfig":{"maxOutputTokens":9}}'
    r = httpx.post(routes_gw.url + "/genai/v1beta/models/mock/m:generateContent", content=body)
    assert r.status_code == 400, r.text
    assert error_of("genai", r)["param"] == "generationConfig"


def test_bad_input_repeated_read_key_without_access_control_is_served(gateway: Proc) -> None:
    # No authorization depends on it: forwarded as sent (the gateway reads the last, as
    # most JSON parsers do), at no cost to the common request.
    body = '{"model":"mock/a","model":"mock/b",' + OK_MSG + "}"
    assert httpx.post(gateway.url + CHAT, content=body).status_code == 200


def test_bad_input_repeated_keys_the_gateway_does_not_read_or_nested_pass(routes_gw: Proc) -> None:
    # Only the top-level keys the gateway routes on are refused; the rest is the upstream's.
    tool = '{"type":"object","properties":{"model":{"type":"string"},"stream":{"type":"boolean"}}}'
    bodies = [
        '{"model":"mock/m",' + OK_MSG + ',"user":"a","user":"b"}',
        '{"model":"mock/m",' + OK_MSG + ',"x":{"model":1,"model":2}}',
        '{"model":"mock/m","messages":[{"role":"user","content":"say \\"model\\" and \\"model\\""}]}',
        '{"model":"mock/m",'
        + OK_MSG
        + ',"tools":[{"type":"function","function":{"name":"f","parameters":'
        + tool
        + "}}]}",
    ]
    for body in bodies:
        assert httpx.post(routes_gw.url + CHAT, content=body).status_code == 200, body


@pytest.mark.parametrize(
    "value", ["€".encode(), b"\xe9", "é".encode()], ids=["euro-utf8", "latin1-byte", "e-acute-utf8"]
)
def test_bad_input_extra_header_value_not_ascii_is_400(gateway: Proc, value: bytes) -> None:
    # Both upstream clients: the pool wrote the value as Latin-1 (a 500 for "€", "é" sent
    # as one byte), aiohttp as UTF-8; neither forwarded what the client sent.
    r = httpx.post(
        gateway.url + CHAT,
        content='{"model":"up/m",' + OK_MSG + "}",
        headers=[("x-bf-eh-x-note", value)],
    )
    assert_error(r, 400, param="x-bf-eh-x-note", mentions="visible ASCII")


@pytest.mark.parametrize("value", [b"a\x01b", b"a\x7fb"], ids=["control", "del"])
def test_bad_input_extra_header_value_with_control_characters_is_400(gateway: Proc, value: bytes) -> None:
    # aiohttp's parser refuses these itself, before any handler.
    r = httpx.post(gateway.url + CHAT, content='{"model":"up/m",' + OK_MSG + "}", headers=[("x-bf-eh-x-note", value)])
    assert_error(r, 400, mentions="")


def test_bad_input_extra_header_ascii_is_forwarded(gateway: Proc, received: Callable[[], list[dict[str, Any]]]) -> None:
    r = httpx.post(
        gateway.url + CHAT, content='{"model":"up/m",' + OK_MSG + "}", headers=[("x-bf-eh-x-note", "a b\tc ~!")]
    )
    assert r.status_code == 200, r.text
    (seen,) = received()
    assert {k.lower(): v for k, v in seen["headers"].items()}["x-note"] == "a b\tc ~!"


@pytest.mark.parametrize("name", [b"x-bf-eh-a@b", b'x-bf-eh-a"b', b"x-bf-eh-a/b"])
def test_bad_input_extra_header_name_not_a_token_is_400(gateway: Proc, name: bytes) -> None:
    body = ('{"model":"up/m",' + OK_MSG + "}").encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s: v\r\n\r\n" % (len(body), name)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert b" 400 " in answer.split(b"\r\n")[0], answer[:300]
