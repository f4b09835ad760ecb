"""gateway.server.routes: the inference routes generated from the dialects, the route
dicts built from them, and the table of them in docs/api.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.server.dispatch import Handler
from gateway.server.routes import Cell, matrix, table

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"
_NAMES = ("chat", "completions", "models", "embeddings", "messages", "generate")
HANDLERS = cast(dict[str, Handler], {n: n for n in _NAMES})


def doc_matrix() -> list[Cell]:
    text = API_DOC.read_text()
    block = re.search(r"<!-- route-matrix[^>]*-->\n(.*?)<!-- /route-matrix -->", text, re.S)
    assert block is not None, "docs/api.md has no route-matrix block"
    rows = [line for line in block.group(1).splitlines() if line.startswith("| `")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]
    return [Cell(method, path, dialect, "") for method, path, dialect in cells]


def test_routes_doc_table_equals_the_matrix() -> None:
    expected = "\n".join(f"| `{c.method}` | `{c.path}` | {c.dialect} |" for c in matrix())
    got = [(c.method, c.path, c.dialect) for c in doc_matrix()]
    assert got == [(c.method, c.path, c.dialect) for c in matrix()], f"docs/api.md should list:\n{expected}"


def test_routes_table_serves_what_was_served_before() -> None:
    exact, prefixes = table(HANDLERS)
    openai: dict[str, dict[str, Any]] = {}
    for prefix in ("/v1", "/openai/v1", "/openai", "/langchain/v1", "/pydanticai/v1"):
        openai[f"{prefix}/chat/completions"] = {"POST": "chat"}
        openai[f"{prefix}/completions"] = {"POST": "completions"}
        openai[f"{prefix}/models"] = {"GET": "models"}
        openai[f"{prefix}/embeddings"] = {"POST": "embeddings"}
    assert exact == {**openai, "/anthropic/v1/messages": {"POST": "messages"}}
    assert prefixes == {"/genai/v1beta/models/": {"POST": "generate"}, "/genai/v1/models/": {"POST": "generate"}}


def test_routes_table_refuses_two_handlers_for_one_route() -> None:
    cells = [Cell("POST", "/x/{model}:a", "d", "chat"), Cell("POST", "/x/{model}:b", "d", "models")]
    with pytest.raises(ValueError, match="two handlers for POST /x/"):
        table(HANDLERS, cells)


def test_routes_table_needs_every_named_handler() -> None:
    with pytest.raises(KeyError):
        table(HANDLERS, [Cell("POST", "/audio/speech", "openai", "speech")])
