"""The inference routes, generated: every (method, path) the SDK calls of each dialect
(``providers.dialect.Route``) make under its integration prefixes and version roots,
and the route dicts the dispatcher looks them up in.

``docs/api.md`` shows the same matrix as a table (a test holds the two equal). The
other routes (health, metrics, async jobs, the admin API, request logs) are added by
the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from gateway.providers.dialect import Dialect
from gateway.providers.registry import DIALECTS
from gateway.routing.table import ModelTable
from gateway.server.dispatch import Handler, Routes
from gateway.server.dropin import DropIn
from gateway.server.handlers import Handlers
from gateway.server.listing import ModelLists

# The handlers every dialect's routes share: one answers in the shape the caller's SDK
# reads (server.listing), so a path several dialects serve has one handler.
SHARED = ("models", "model")


class Cell(NamedTuple):
    """One inference route: ``path`` may hold a variable part (``{model}``)."""

    method: str
    path: str
    dialect: str
    handler: str


def matrix(dialects: Iterable[Dialect] = DIALECTS.values()) -> list[Cell]:
    """Every inference route the server serves, dialect by dialect."""
    return [Cell(r.method, r.path, d.name, r.handler) for d in dialects for r in d.served()]


def rows(cells: Iterable[Cell] | None = None) -> list[tuple[str, str, str]]:
    """The matrix as docs/api.md shows it: one row per method and path, with every
    dialect that serves it ("openai, anthropic, gemini": a shared path)."""
    out: dict[tuple[str, str], list[str]] = {}
    for c in matrix() if cells is None else cells:
        names = out.setdefault((c.method, c.path), [])
        if c.dialect not in names:
            names.append(c.dialect)
    return [(method, path, ", ".join(names)) for (method, path), names in out.items()]


def summary(dialects: Iterable[Dialect] = DIALECTS.values()) -> list[str]:
    """The matrix in a few lines, as the README shows it: per SDK family (a dialect with
    routes), the roots its base URL may point at and the calls served under each."""
    out = []
    for d in dialects:
        if not d.routes:
            continue
        roots = ", ".join(f"`{i.prefix + v or '/'}`" for i in d.integrations for v in i.versions)
        calls = ", ".join(f"`{r.method} {r.path}`" for r in d.routes)
        out.append(f"| {d.name} | {roots} | {calls} |")
    return out


def table(resolve: Callable[[Cell], Handler], cells: Iterable[Cell] | None = None) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes) of ``cells`` (the matrix), each cell's handler
    given by ``resolve``: a path with a variable part is served by its prefix up to that
    part, so lookups stay plain dict lookups. Built at start-up. One method of one path
    served by two different handlers is a ValueError: where dialects share a path they
    share its handler (``SHARED``), and a dialect's calls named in the URL share its
    drop-in's one (``DropIn.by_url``)."""
    exact: Routes = {}
    prefixes: Routes = {}
    for cell in matrix() if cells is None else cells:
        head, variable, _ = cell.path.partition("{")
        methods = (prefixes if variable else exact).setdefault(head, {})
        handler = resolve(cell)
        if methods.setdefault(cell.method, handler) is not handler:
            raise ValueError(f"two handlers for {cell.method} {head}")
    return exact, prefixes


def families(cells: Iterable[Cell], dialects: Mapping[str, Dialect] = DIALECTS) -> dict[str, tuple[Dialect, ...]]:
    """The dialects serving each path of the shared handlers (``server.listing``)."""
    out: dict[str, tuple[Dialect, ...]] = {}
    for cell in cells:
        if cell.handler in SHARED:
            found, d = out.get(cell.path, ()), dialects[cell.dialect]
            if d not in found:
                out[cell.path] = (*found, d)
    return out


def inference(h: Handlers, table_: ModelTable, *, max_body_bytes: int) -> tuple[Routes, Routes, dict[str, DropIn]]:
    """The matrix's routes, served by the OpenAI handlers, each SDK-side dialect's
    drop-in and the shared model lists; and the drop-ins (the app wires their jobs)."""
    cells = matrix()
    drop_ins = {d.name: DropIn(h, d, max_body_bytes=max_body_bytes) for d in DIALECTS.values() if d.inbound is not None}
    lists = ModelLists(h, table_, families=families(cells))
    shared: dict[str, Handler] = {"models": lists.models, "model": lists.model}
    openai: dict[str, Handler] = {"chat": h.chat, "completions": h.completions, "embeddings": h.embeddings}

    def resolve(cell: Cell) -> Handler:
        if cell.handler in shared:
            return shared[cell.handler]
        dropin = drop_ins.get(cell.dialect)
        if dropin is not None:
            return dropin.handler(kind=cell.handler, path=cell.path)
        return openai[cell.handler]

    exact, prefixes = table(resolve, cells)
    return exact, prefixes, drop_ins
