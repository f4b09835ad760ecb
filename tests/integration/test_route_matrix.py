"""Every cell of the inference route matrix (``gateway.server.routes.matrix``) called
once, over HTTP, against a gateway whose only provider is the built-in mock: each route
answers 200 in its own wire format; where dialects share a path, in the shape of the SDK
whose headers came."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.server.routes import Cell, matrix
from tests.conftest import Proc, serve_config

MODEL = "mock-chat"  # bare: the default provider (the mock) serves it on every route
LISTED = "mock/mock-chat"  # as the model lists name it
MESSAGES = [{"role": "user", "content": "hi"}]
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]

# A request body per (dialect, handler), in the wire format its route speaks.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("openai", "chat"): {"model": MODEL, "messages": MESSAGES, "max_tokens": 5},
    ("openai", "completions"): {"model": MODEL, "prompt": "hi", "max_tokens": 5},
    ("anthropic", "chat"): {"model": MODEL, "max_tokens": 5, "messages": MESSAGES},
    ("anthropic", "count_tokens"): {"model": MODEL, "messages": MESSAGES},
    ("gemini", "chat"): {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 5}},
    ("gemini", "count_tokens"): {"contents": CONTENTS},
    ("openai", "embeddings"): {"model": MODEL, "input": ["hi", "there"], "encoding_format": "float", "dimensions": 8},
    ("gemini", "embed_one"): {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 8},
    ("gemini", "embed_batch"): {"requests": [{"model": f"models/{MODEL}", "content": {"parts": [{"text": "hi"}]}}]},
    ("responses", "chat"): {"model": MODEL, "input": "hi", "max_output_tokens": 5},
    ("responses", "count_tokens"): {"model": MODEL, "input": "hi"},
}
# What each SDK sends on every call (recorded from the SDKs; tests/unit/server/test_routes.py).
SDK_HEADERS = {
    "openai": {},
    "responses": {},
    "anthropic": {"anthropic-version": "2023-06-01"},
    "gemini": {"x-goog-api-client": "x"},
}


def check_answer(cell: Cell, r: httpx.Response) -> None:
    """What a 200 on each route holds, in its dialect's shape."""
    if cell.path.endswith(":streamGenerateContent"):
        assert r.headers["content-type"].startswith("text/event-stream")
        assert b'"candidates"' in r.content
        return
    data = r.json()
    kind = (cell.dialect, cell.handler)
    if kind == ("openai", "chat"):
        assert data["object"] == "chat.completion" and data["choices"][0]["message"]["content"]
    elif kind == ("openai", "completions"):
        assert data["object"] == "text_completion" and data["choices"][0]["text"]
    elif kind == ("openai", "embeddings"):
        assert data["object"] == "list" and [len(d["embedding"]) for d in data["data"]] == [8, 8]
        assert data["usage"]["prompt_tokens"] > 0
    elif kind == ("gemini", "embed_one"):
        assert len(data["embedding"]["values"]) == 8
    elif kind == ("gemini", "embed_batch"):
        assert len(data["embeddings"][0]["values"]) == 768  # the mock's default
    elif kind == ("openai", "models"):
        assert data["object"] == "list" and LISTED in [m["id"] for m in data["data"]]
    elif kind == ("openai", "model"):
        assert data == {"id": LISTED, "object": "model", "created": 0, "owned_by": "mock"}
    elif kind == ("responses", "chat"):
        assert data["object"] == "response" and data["output"][0]["content"][0]["text"]
    elif kind == ("responses", "count_tokens"):
        assert data["object"] == "response.input_tokens" and data["input_tokens"] > 0
    elif kind == ("anthropic", "chat"):
        assert data["type"] == "message" and data["content"][0]["text"]
    elif kind == ("anthropic", "count_tokens"):
        assert list(data) == ["input_tokens"] and data["input_tokens"] > 0
    elif kind == ("anthropic", "models"):
        assert data["has_more"] is False and data["first_id"] == data["data"][0]["id"]
        assert next(m for m in data["data"] if m["id"] == LISTED) == {
            "id": LISTED,
            "display_name": LISTED,
            "created_at": "1970-01-01T00:00:00Z",
            "type": "model",
        }
    elif kind == ("anthropic", "model"):
        assert data["type"] == "model" and data["id"] == LISTED
    elif kind == ("gemini", "chat"):
        assert data["candidates"][0]["content"]["parts"][0]["text"]
    elif kind == ("gemini", "count_tokens"):
        assert list(data) == ["totalTokens"] and data["totalTokens"] > 0
    elif kind == ("gemini", "models"):
        entry = next(m for m in data["models"] if m["name"] == f"models/{LISTED}")
        assert entry["name"] == f"models/{LISTED}" and "countTokens" in entry["supportedGenerationMethods"]
    else:
        assert kind == ("gemini", "model"), "a new handler needs its check here"
        assert data["name"] == f"models/{LISTED}" and data["displayName"] == LISTED


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = {"providers": {"mock": {"dialect": "mock", "models": [MODEL]}}, "default_provider": "mock"}
    proc = serve_config(config, tmp_path_factory.mktemp("route-matrix"))
    yield proc
    proc.stop()


def _url(gw: Proc, cell: Cell) -> str:
    return gw.url + cell.path.replace("{model}", LISTED if cell.handler == "model" else MODEL)


@pytest.mark.parametrize("cell", matrix(), ids=lambda c: f"{c.method} {c.path} {c.dialect}")
def test_route_matrix_cell_answers(gw: Proc, cell: Cell) -> None:
    body = BODIES.get((cell.dialect, cell.handler))  # a new POST handler needs its body here
    assert body is not None or cell.method == "GET"
    r = httpx.request(cell.method, _url(gw, cell), json=body, headers=SDK_HEADERS[cell.dialect], timeout=10)
    assert r.status_code == 200, r.text
    check_answer(cell, r)


def test_route_matrix_other_methods_are_405(gw: Proc) -> None:
    cells = matrix()
    for cell in cells:
        other = "GET" if cell.method == "POST" else "POST"
        if any(c.path == cell.path and c.method == other for c in cells):
            continue
        r = httpx.request(other, _url(gw, cell), headers=SDK_HEADERS[cell.dialect], timeout=10)
        head = cell.path.partition("{")[0]
        if cell.handler == "model" and any(c.method == "POST" and c.path.startswith(head) for c in cells):
            # POST .../models/{model} where Gemini's actions live: a call naming no action.
            assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND", (cell, r.text)
            continue
        assert r.status_code == 405, (cell, r.text)
        assert r.headers["allow"] == cell.method


@pytest.mark.parametrize(
    ("path", "method"),
    [("/chat/completions", "POST"), ("/anthropic/v1/chat/completions", "POST"), ("/genai/v1beta/files", "GET")],
)
def test_route_matrix_unknown_routes_are_openai_404s(gw: Proc, path: str, method: str) -> None:
    r = httpx.request(method, gw.url + path, json={}, timeout=10)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "unknown_url"
