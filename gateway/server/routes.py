"""The inference routes, generated: every (method, path) the SDK calls of each dialect
(``providers.dialect.Route``) make under its integration prefixes and version roots,
and the route dicts the dispatcher looks them up in.

``docs/api.md`` shows the same matrix as a table (a test holds the two equal). The
other routes (health, metrics, async jobs, the admin API, request logs) are added by
the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from gateway.providers.dialect import Dialect
from gateway.providers.registry import DIALECTS
from gateway.server.dispatch import Handler, Routes
from gateway.server.dropin import DropIns
from gateway.server.handlers import Handlers


class Cell(NamedTuple):
    """One inference route: ``path`` may hold a variable part (``{model}``)."""

    method: str
    path: str
    dialect: str
    handler: str


def matrix(dialects: Iterable[Dialect] = DIALECTS.values()) -> list[Cell]:
    """Every inference route the server serves, dialect by dialect."""
    return [Cell(r.method, r.path, d.name, r.handler) for d in dialects for r in d.served()]


def table(handlers: Mapping[str, Handler], cells: Iterable[Cell] | None = None) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes) of ``cells`` (the matrix): a path with a variable
    part is served by its prefix up to that part, so lookups stay plain dict lookups.
    Built at start-up; a handler name no server handler has is a KeyError here."""
    exact: Routes = {}
    prefixes: Routes = {}
    for cell in matrix() if cells is None else cells:
        head, variable, _ = cell.path.partition("{")
        methods = (prefixes if variable else exact).setdefault(head, {})
        handler = handlers[cell.handler]
        if methods.setdefault(cell.method, handler) is not handler:
            raise ValueError(f"two handlers for {cell.method} {head}")
    return exact, prefixes


def inference(h: Handlers, d: DropIns) -> tuple[Routes, Routes]:
    """The matrix's routes, served by the OpenAI handlers and the SDK drop-ins."""
    return table(
        {
            "chat": h.chat,
            "completions": h.completions,
            "models": h.models,
            "embeddings": h.embeddings,
            "messages": d.messages,
            "generate": d.generate,
        }
    )
