"""gateway.server.responses_routes: the kept responses' routes follow the OpenAI family's
roots (those of the route matrix) and stay clear of its inference routes."""

from __future__ import annotations

from typing import cast

from gateway.server.handlers import Handlers
from gateway.server.responses_routes import StoredResponses, routes
from gateway.server.responses_state import ResponseStates
from gateway.server.routes import matrix
from gateway.state import MemoryStore


def test_responses_routes_under_every_openai_root_of_the_matrix() -> None:
    states = ResponseStates(MemoryStore(), ttl_s=60, max_record_bytes=1024, max_conversation_bytes=1024)
    table = routes(StoredResponses(cast(Handlers, None), states, providers={}))
    chat = "/chat/completions"
    roots = {c.path[: -len(chat)] for c in matrix() if c.dialect == "openai" and c.path.endswith(chat)}
    assert {p.removesuffix("/responses/") for p in table} == roots
    assert "/v1" in roots and "" not in roots  # the root serves /v1/... only
    for methods in table.values():
        assert set(methods) == {"GET", "DELETE", "POST"}
    # No prefix route of the matrix overlaps these; the only exact ones under them are
    # the token counts (POST .../responses/input_tokens), which exact lookup finds first.
    prefixes = {c.path.partition("{")[0] for c in matrix() if "{" in c.path}
    assert not any(p.startswith(prefix) or prefix.startswith(p) for p in table for prefix in prefixes)
    under = {c.path.removeprefix(p) for c in matrix() for p in table if c.path.startswith(p)}
    assert under == {"input_tokens"}
