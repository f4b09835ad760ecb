"""gateway.server.routes: the inference routes generated from the dialects, the route
dicts built from them, and the table of them in docs/api.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.providers.registry import DIALECTS
from gateway.server.dispatch import Handler
from gateway.server.routes import Cell, families, matrix, rows, summary, table

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"
README = Path(__file__).parents[3] / "README.md"


def by_name(cell: Cell) -> Handler:
    """A stand-in handler: the shared ones by name, the others by dialect and name, and a
    dialect's calls named in the URL as one (``DropIn.by_url``)."""
    if cell.handler in ("models", "model"):
        name = cell.handler
    elif "{model}:" in cell.path:
        name = f"{cell.dialect}:url"
    else:
        name = f"{cell.dialect}:{cell.handler}"
    return cast(Handler, sys.intern(name))  # one object per name: the table compares identity


def doc_rows() -> list[tuple[str, str, str]]:
    text = API_DOC.read_text()
    block = re.search(r"<!-- route-matrix[^>]*-->\n(.*?)<!-- /route-matrix -->", text, re.S)
    assert block is not None, "docs/api.md has no route-matrix block"
    lines = [line for line in block.group(1).splitlines() if line.startswith("| `")]
    cells = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in lines]
    return [(method, path, dialects) for method, path, dialects in cells]


def test_routes_readme_summary_equals_the_matrix() -> None:
    block = re.search(r"<!-- routes[^>]*-->\n(.*?)<!-- /routes -->", README.read_text(), re.S)
    assert block is not None, "README.md has no routes block"
    lines = [line for line in block.group(1).splitlines() if line.startswith("| ") and "`" in line]
    assert lines == summary(), "README.md should list:\n" + "\n".join(summary())


def test_routes_summary_expands_to_the_matrix() -> None:
    """Every root of a family times every call of it: exactly the matrix's routes."""
    expanded = set()
    for line in summary():
        _, roots, calls = line.split(" | ")
        for root in re.findall(r"`([^`]+)`", roots):
            for call in re.findall(r"`([^`]+)`", calls):
                method, path = call.split(" ", 1)
                expanded.add((method, root.rstrip("/") + path))
    assert expanded == {(c.method, c.path) for c in matrix()}


def test_routes_doc_table_equals_the_matrix() -> None:
    expected = "\n".join(f"| `{m}` | `{p}` | {d} |" for m, p, d in rows())
    assert doc_rows() == rows(), f"docs/api.md should list:\n{expected}"


def test_routes_openai_family_under_every_prefix_with_and_without_v1() -> None:
    exact, prefixes = table(by_name)
    for prefix in ("/v1", "/openai/v1", "/openai", "/langchain/v1", "/langchain", "/pydanticai/v1", "/pydanticai"):
        assert exact[f"{prefix}/chat/completions"] == {"POST": "openai:chat"}
        assert exact[f"{prefix}/completions"] == {"POST": "openai:completions"}
        assert exact[f"{prefix}/embeddings"] == {"POST": "openai:embeddings"}
        assert exact[f"{prefix}/models"] == {"GET": "models"}
        assert prefixes[f"{prefix}/models/"]["GET"] == "model"
    for prefix in ("/litellm/v1", "/litellm"):
        assert exact[f"{prefix}/chat/completions"] == {"POST": "openai:chat"}
    # The root serves /v1/... only, as the reference API does.
    assert "/chat/completions" not in exact and "/models" not in exact


def test_routes_sdk_families_under_their_prefixes() -> None:
    exact, prefixes = table(by_name)
    for prefix in ("/anthropic", "/langchain", "/pydanticai", "/litellm"):
        assert exact[f"{prefix}/v1/messages"] == {"POST": "anthropic:chat"}
        assert exact[f"{prefix}/v1/messages/count_tokens"] == {"POST": "anthropic:count_tokens"}
        assert exact[f"{prefix}/v1/models"] == {"GET": "models"}
    for prefix in ("/genai", "/langchain", "/pydanticai", "/litellm"):
        for version in ("/v1beta", "/v1"):
            assert prefixes[f"{prefix}{version}/models/"] == {"POST": "gemini:url", "GET": "model"}
            assert exact[f"{prefix}{version}/models"] == {"GET": "models"}
    assert "/anthropic/v1/chat/completions" not in exact and "/genai/v1beta/messages" not in exact


def test_routes_shared_paths_name_every_family() -> None:
    shared = families(matrix())
    assert [d.name for d in shared["/langchain/v1/models"]] == ["openai", "anthropic", "gemini"]
    assert [d.name for d in shared["/langchain/v1beta/models"]] == ["gemini"]
    assert [d.name for d in shared["/anthropic/v1/models"]] == ["anthropic"]
    assert [d.name for d in shared["/langchain/v1/models/{model}"]] == ["openai", "anthropic", "gemini"]
    assert ("GET", "/langchain/v1/models", "openai, anthropic, gemini") in rows()


def test_routes_sdk_clients_are_told_apart_by_their_own_headers() -> None:
    # Recorded from anthropic 2.x and google-genai 1.x+: what each sends on every call.
    assert "anthropic-version" in DIALECTS["anthropic"].client_headers
    assert {"x-goog-api-key", "x-goog-api-client"} <= set(DIALECTS["gemini"].client_headers)
    assert not DIALECTS["openai"].client_headers


def test_routes_table_refuses_two_handlers_for_one_route() -> None:
    cells = [Cell("POST", "/x/{model}:a", "d", "chat"), Cell("POST", "/x/{model}:b", "d", "models")]
    with pytest.raises(ValueError, match="two handlers for POST /x/"):
        table(lambda c: cast(Handler, c.handler), cells)


def test_routes_table_needs_every_named_handler() -> None:
    known: dict[str, Any] = {"chat": "chat"}
    with pytest.raises(KeyError):
        table(lambda c: known[c.handler], [Cell("POST", "/audio/speech", "openai", "speech")])
