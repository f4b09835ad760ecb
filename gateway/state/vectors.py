"""The semantic cache's vector index: which stored entry is nearest to a new request's
embedding, among the entries it may be compared with.

Entries live in groups (``group``: the entries comparable with each other, such as the
same namespace, model and parameters) and in namespaces (``namespace``: what one
invalidation removes at once). A group's vectors all have one dimension, set by its
first entry; they are kept normalised, as float32, so cosine similarity is a dot product.

A group is searched exactly (one matrix-vector product over its rows) until it holds
``ann_min_entries``; from then on an HNSW graph (usearch) finds candidates, rescored
exactly against the matrix, so a returned similarity is always the true cosine. The
graph is built in a worker thread when a group crosses the size, while exact search
goes on; it is dropped again when the group falls to half the size, and rebuilt when
removals have left it with more dead nodes than live ones.

Entries expire ``ttl_s`` after they were added (a heap of expiry times, drained on
every call); past ``max_entries`` the least recently used entry (added or returned by
``nearest``) is evicted.

``vector_index`` builds the index the state store's configuration asks for: this one in
process, or ``vectorshare.SharedVectorIndex`` (this index kept in step with every other
process through Redis).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from gateway.config.schema import StoreConfig
    from gateway.metrics import Metrics

Vector = npt.NDArray[np.float32]

# 20,000 entries of 768 float32 dimensions are ~60 MB of vectors (x4 at 3072 dimensions):
# a cache of answers, not a vector database. Raise it through the constructor.
DEFAULT_MAX_ENTRIES = 20_000
# Below this a group is searched exactly: a product of 10,000 x 768 float32 reads 30 MB and
# takes ~1-3 ms on one core; an HNSW search takes ~0.3-0.6 ms at that size, and inserting
# into the graph costs ~1 ms an entry (768 dimensions), so small groups are not worth it.
ANN_MIN_ENTRIES = 10_000
# Candidates asked of the graph, rescored exactly: a few more than one, so an entry being
# removed or a slightly misordered neighbour does not hide the nearest.
ANN_CANDIDATES = 8
# The graph is rebuilt once removals left this many dead nodes, and more than live ones.
ANN_MIN_DEAD = 1024
_INITIAL_ROWS = 16


class VectorIndex(Protocol):
    async def add(
        self, entry_id: str, namespace: str, group: str, vector: Sequence[float] | Vector, ttl_s: float
    ) -> None:
        """Adds (or replaces) an entry, live for ``ttl_s``. A vector of another dimension
        than the group's, or of zero or non-finite length, is a ValueError. A shared
        index that cannot reach its store keeps the entry locally and counts the failure;
        it never raises for it."""
        ...

    async def nearest(self, group: str, vector: Sequence[float] | Vector, threshold: float) -> tuple[str, float] | None:
        """(entry id, cosine similarity) of the group's nearest live entry whose similarity
        is at least ``threshold``; None when there is none, or when a shared index is out
        of step with its store (a removal may have been missed)."""
        ...

    async def remove(self, entry_id: str) -> None: ...

    async def remove_namespace(self, namespace: str) -> None: ...

    async def close(self) -> None: ...


def unit(vector: Sequence[float] | Vector) -> Vector:
    """``vector`` as normalised float32; ValueError when it has no direction."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not v.size or not np.isfinite(norm) or norm == 0.0:
        raise ValueError("a vector needs at least one dimension, finite values and a non-zero length")
    return v / np.float32(norm)


class _Entry:
    __slots__ = ("expires", "group", "id", "key", "namespace", "row")

    def __init__(self, entry_id: str, namespace: str, group: str, expires: float, key: int) -> None:
        self.id = entry_id
        self.namespace = namespace
        self.group = group
        self.expires = expires
        self.key = key  # the entry's label in the group's graph
        self.row = -1  # its row in the group's matrix


class _Group:
    """One group's vectors: rows 0..n-1 of ``matrix``, ``entries[i]`` owning row i."""

    __slots__ = ("ann", "building", "by_key", "dead", "entries", "matrix", "next_key")

    def __init__(self, dim: int) -> None:
        self.matrix: Vector = np.empty((_INITIAL_ROWS, dim), dtype=np.float32)
        self.entries: list[_Entry] = []
        self.by_key: dict[int, _Entry] = {}
        self.next_key = 0
        self.ann: Any = None  # usearch.index.Index once built
        self.dead = 0  # nodes removed from the graph since it was built
        self.building = False

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def append(self, entry: _Entry, v: Vector) -> None:
        n = len(self.entries)
        if n == self.matrix.shape[0]:
            grown = np.empty((2 * n, self.dim), dtype=np.float32)
            grown[:n] = self.matrix
            self.matrix = grown
        self.matrix[n] = v
        entry.row = n
        self.entries.append(entry)
        self.by_key[entry.key] = entry
        if self.ann is not None:
            self.ann.add(entry.key, v)

    def drop(self, entry: _Entry) -> None:
        """Removes ``entry``'s row: the last row takes its place."""
        last = self.entries.pop()
        if last is not entry:
            self.matrix[entry.row] = self.matrix[last.row]
            self.entries[entry.row] = last
            last.row = entry.row
        del self.by_key[entry.key]
        if self.ann is not None:
            self.ann.remove(entry.key)
            self.dead += 1


def _build_graph(dim: int, keys: npt.NDArray[np.uint64], rows: Vector) -> Any:
    """An HNSW graph of ``rows`` (in a worker thread: ~1 ms an entry at 768 dimensions)."""
    from usearch.index import Index  # ~0.1 s to import: only once a group is this large

    graph = Index(ndim=dim, metric="ip", dtype="f32")
    if len(keys):
        graph.add(keys, rows, threads=1)
    return graph


class EmbeddedVectorIndex:
    """The index of one process."""

    __slots__ = ("_ann_min", "_clock", "_entries", "_expiry", "_groups", "_max", "_tasks", "evicted")

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ann_min_entries: int = ANN_MIN_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ann_min_entries < 2:
            raise ValueError("max_entries must be at least 1 and ann_min_entries at least 2")
        self._max = max_entries
        self._ann_min = ann_min_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._groups: dict[str, _Group] = {}
        self._expiry: list[tuple[float, str]] = []  # heap; stale items skipped
        self._tasks: set[asyncio.Task[None]] = set()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def namespace_of(self, entry_id: str) -> str | None:
        entry = self._entries.get(entry_id)
        return entry.namespace if entry is not None else None

    def uses_graph(self, group: str) -> bool:
        g = self._groups.get(group)
        return g is not None and g.ann is not None

    async def add(
        self, entry_id: str, namespace: str, group: str, vector: Sequence[float] | Vector, ttl_s: float
    ) -> None:
        self.put(entry_id, namespace, group, unit(vector), ttl_s)

    def put(self, entry_id: str, namespace: str, group: str, v: Vector, ttl_s: float) -> None:
        """``add`` of a vector already normalised (``unit``)."""
        now = self._clock()
        self._expire(now)
        g = self._groups.get(group)
        if g is not None and g.dim != v.shape[0]:
            raise ValueError(f"vector of {v.shape[0]} dimensions in a group of {g.dim}")
        self.discard(entry_id)
        if ttl_s <= 0:
            return
        while len(self._entries) >= self._max:
            self.discard(next(iter(self._entries)))
            self.evicted += 1
        # Read again: the discards above may have emptied the group and dropped it.
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(v.shape[0])
        entry = _Entry(entry_id, namespace, group, now + ttl_s, g.next_key)
        g.next_key += 1
        g.append(entry, v)
        self._entries[entry_id] = entry
        heapq.heappush(self._expiry, (entry.expires, entry_id))
        if g.ann is None and not g.building and len(g.entries) >= self._ann_min:
            self._start_build(group, g)

    async def nearest(self, group: str, vector: Sequence[float] | Vector, threshold: float) -> tuple[str, float] | None:
        self._expire(self._clock())
        g = self._groups.get(group)
        if g is None:
            return None
        q = unit(vector)
        if q.shape[0] != g.dim:
            return None
        n = len(g.entries)
        if g.ann is not None:
            found = g.ann.search(q, min(ANN_CANDIDATES, n))
            rows = [e.row for k in found.keys if (e := g.by_key.get(int(k))) is not None]
            if not rows:
                return None
            scores = g.matrix[rows] @ q
            best = int(np.argmax(scores))
            entry, similarity = g.entries[rows[best]], float(scores[best])
        else:
            scores = g.matrix[:n] @ q
            best = int(np.argmax(scores))
            entry, similarity = g.entries[best], float(scores[best])
        if similarity < threshold:
            return None
        self._entries.move_to_end(entry.id)
        return entry.id, min(similarity, 1.0)

    async def remove(self, entry_id: str) -> None:
        self.discard(entry_id)

    async def remove_namespace(self, namespace: str) -> None:
        self.discard_namespace(namespace)

    def discard(self, entry_id: str) -> None:
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return
        g = self._groups[entry.group]
        g.drop(entry)
        if not g.entries:
            del self._groups[entry.group]
        elif g.ann is not None and not g.building:
            if len(g.entries) < self._ann_min // 2:
                g.ann = None  # small again: exact search
            elif g.dead >= ANN_MIN_DEAD and g.dead > len(g.entries):
                self._start_build(entry.group, g)

    def discard_namespace(self, namespace: str) -> None:
        # A scan of every entry: invalidations are rare, lookups are not, so no second
        # map to keep up to date on every add.
        for entry_id in [e.id for e in self._entries.values() if e.namespace == namespace]:
            self.discard(entry_id)

    def _expire(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, entry_id = heapq.heappop(heap)
            entry = self._entries.get(entry_id)
            if entry is not None and entry.expires == expires:
                self.discard(entry_id)
        if len(heap) > 2 * len(self._entries) + 1024:  # replaced and removed entries' items
            self._expiry = [(e.expires, e.id) for e in self._entries.values()]
            heapq.heapify(self._expiry)

    def _start_build(self, name: str, g: _Group) -> None:
        g.building = True
        task = asyncio.get_running_loop().create_task(self._build(name, g))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _build(self, name: str, g: _Group) -> None:
        """Builds the group's graph off the loop, then brings it up to date with what
        was added and removed meanwhile."""
        n = len(g.entries)
        keys = np.fromiter((e.key for e in g.entries), dtype=np.uint64, count=n)
        rows = g.matrix[:n].copy()
        try:
            graph = await asyncio.to_thread(_build_graph, g.dim, keys, rows)
        finally:
            g.building = False
        if self._groups.get(name) is not g:
            return  # emptied meanwhile
        built = set(keys.tolist())
        for key in built - g.by_key.keys():
            graph.remove(key)
        for key in g.by_key.keys() - built:
            graph.add(key, g.matrix[g.by_key[key].row])
        g.ann, g.dead = graph, 0

    async def wait_built(self) -> None:
        """Waits for the graphs being built (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._entries.clear()
        self._groups.clear()
        self._expiry.clear()


def vector_index(
    store: StoreConfig,
    *,
    metrics: Metrics | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    ann_min_entries: int = ANN_MIN_ENTRIES,
) -> VectorIndex:
    """The index for the state store ``store`` configures: shared through its Redis when
    it has one (failures counted in ``metrics.vector_errors``), else in process."""
    if store.redis_url:
        from gateway.state.vectorshare import SharedVectorIndex  # redis-py: imported when used

        return SharedVectorIndex(
            store.redis_url,
            prefix=store.prefix,
            timeout_s=store.timeout_s,
            metrics=metrics,
            max_entries=max_entries,
            ann_min_entries=ann_min_entries,
        )
    return EmbeddedVectorIndex(max_entries=max_entries, ann_min_entries=ann_min_entries)
