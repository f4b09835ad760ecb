"""Every cell of the inference route matrix (``gateway.server.routes.matrix``) called
once, over HTTP, against a gateway whose only provider is the built-in mock: each route
answers 200 in its own wire format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.server.routes import Cell, matrix
from tests.conftest import Proc, serve_config

MODEL = "mock-chat"  # bare: the default provider (the mock) serves it on every route

# A request body per handler, in the wire format its route speaks.
BODIES: dict[str, dict[str, Any] | None] = {
    "chat": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    "completions": {"model": MODEL, "prompt": "hi", "max_tokens": 5},
    "models": None,
    "embeddings": {"model": MODEL, "input": ["hi", "there"], "encoding_format": "float", "dimensions": 8},
    "messages": {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    "generate": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 5}},
}


def body_for(cell: Cell) -> dict[str, Any] | None:
    """The request body of ``cell``: Gemini's embedding actions share the generate handler."""
    if cell.path.endswith(":embedContent"):
        return {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 8}
    if cell.path.endswith(":batchEmbedContents"):
        return {"requests": [{"model": f"models/{MODEL}", "content": {"parts": [{"text": "hi"}]}}]}
    return BODIES[cell.handler]  # a new handler needs its body here


def check_answer(cell: Cell, r: httpx.Response) -> None:
    """What a 200 on each handler's route holds."""
    if cell.path.endswith(":embedContent"):
        assert len(r.json()["embedding"]["values"]) == 8
        return
    if cell.path.endswith(":batchEmbedContents"):
        assert len(r.json()["embeddings"][0]["values"]) == 768  # the mock's default
        return
    if cell.path.endswith(":streamGenerateContent"):
        assert r.headers["content-type"].startswith("text/event-stream")
        assert b'"candidates"' in r.content
        return
    data = r.json()
    if cell.handler == "chat":
        assert data["object"] == "chat.completion" and data["choices"][0]["message"]["content"]
    elif cell.handler == "completions":
        assert data["object"] == "text_completion" and data["choices"][0]["text"]
    elif cell.handler == "embeddings":
        assert data["object"] == "list" and [len(d["embedding"]) for d in data["data"]] == [8, 8]
        assert data["usage"]["prompt_tokens"] > 0
    elif cell.handler == "models":
        assert data["object"] == "list" and any(m["id"].startswith("mock/") for m in data["data"])
    elif cell.handler == "messages":
        assert data["type"] == "message" and data["content"][0]["text"]
    else:
        assert cell.handler == "generate"
        assert data["candidates"][0]["content"]["parts"][0]["text"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = {"providers": {"mock": {"dialect": "mock", "models": [MODEL]}}, "default_provider": "mock"}
    proc = serve_config(config, tmp_path_factory.mktemp("route-matrix"))
    yield proc
    proc.stop()


@pytest.mark.parametrize("cell", matrix(), ids=lambda c: f"{c.method} {c.path}")
def test_route_matrix_cell_answers(gw: Proc, cell: Cell) -> None:
    body = body_for(cell)
    url = gw.url + cell.path.replace("{model}", MODEL)
    r = httpx.request(cell.method, url, json=body, timeout=10)
    assert r.status_code == 200, r.text
    check_answer(cell, r)


def test_route_matrix_other_methods_are_405(gw: Proc) -> None:
    for cell in matrix():
        other = "GET" if cell.method == "POST" else "POST"
        if any(c.path == cell.path and c.method == other for c in matrix()):
            continue
        r = httpx.request(other, gw.url + cell.path.replace("{model}", MODEL), timeout=10)
        assert r.status_code == 405, (cell, r.text)
        assert r.headers["allow"] == cell.method
