"""The response cache's semantic lookup: a request that missed the direct key is answered
with the kept answer of the nearest earlier request, by the embedding of its text, when
that one is within the threshold (cosine similarity) and was made with everything else
equal (docs/cache.md, "Semantic lookup").

What is embedded (``cache.semantic_input``): the last user message (``last_user``), or
the user, assistant and tool messages as ``role: text`` lines (``conversation``); for a
text completion, its prompt. What must be equal, the request's *group*: the targets,
endpoint, namespace, caller, embedding model and mode, and the canonical body
(``relay.cachekey.canonical``) without the embedded text (images, tool calls, roles,
instructions and the number of prompts stay). Comparing only within a group keeps a
paraphrase of one question from being answered with another model's or another
temperature's answer, or, with ``last_user``, in another conversation.

The embedding is a real call through the configured ``embedding_model`` (any provider
that serves embeddings, the mock included): retried and failed over as any request,
counted and priced in the metrics, charged to the caller (``Semantic.charge``), and its
cost is what a semantic hit's ``usage.cost`` reports. A failed embedding, or one not
answered within ``cache.embedding_timeout_s``, is a miss
(``gateway_cache_lookups_total{type="semantic",result="error"}``), never a failed request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from msgspec import Struct

from gateway.accounting.usage import Cost
from gateway.errors import GatewayError
from gateway.metrics import CacheMeters
from gateway.relay.unary import unary

if TYPE_CHECKING:
    from gateway.relay.cache import CacheTicket, Entry
    from gateway.relay.call import Call
    from gateway.state.vectors import VectorIndex

log = logging.getLogger("gateway.cache")

Mode = Literal["last_user", "conversation"]
# Text longer than this is not embedded (the request takes the direct lookup only): an
# embedding model reads ~8k tokens at most, and a text cut short would compare its head.
MAX_TEXT_CHARS = 32_768

_decode_any = msgspec.json.decode
_sorted = msgspec.json.Encoder(order="sorted").encode
_encode = msgspec.json.Encoder().encode


class _Item(Struct):
    # base64 of little-endian float32, decoded by msgspec (asked for: a quarter of the
    # bytes, no float parsing, no Python float a dimension), or floats from a server that
    # does not do base64.
    embedding: bytes | list[float]


class _List(Struct):
    data: list[_Item]


_decode_list = msgspec.json.Decoder(_List).decode
# The messages whose text ``conversation`` embeds; the others' text is compared exactly.
_CONVERSATION_ROLES = ("user", "assistant", "tool")


def _take_text(message: Any) -> str | None:
    """A message's text (a string, or its text parts joined), taken out of it: what is
    left (its role, its images, its tool calls) stays in the group, so a question about
    another image is never answered with this one's answer. None when it has no text."""
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = None
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
                part["text"] = None
        return "\n".join(texts) if texts else None
    return None


def parts(body: bytes, *, endpoint: str, mode: Mode, excluded: tuple[str, ...]) -> tuple[str, bytes] | None:
    """The text a request is embedded by and its group's canonical body; None when it has
    no text to embed (only images, token ids, no user message) or too much."""
    obj = _decode_any(body)
    if not isinstance(obj, dict):
        return None
    for name in excluded:
        obj.pop(name, None)
    text: str | None = None
    if endpoint == "text":
        if obj.get("echo"):
            return None  # the answer repeats the prompt: only the same prompt may have it
        prompt = obj.get("prompt")
        if isinstance(prompt, str):
            text, obj["prompt"] = prompt, None
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            # One choice a prompt, in order: how many stays in the group.
            text, obj["prompt"] = "\n".join(prompt), [None] * len(prompt)
    else:
        messages = obj.get("messages")
        if not isinstance(messages, list):
            return None
        if mode == "conversation":
            lines = []
            for m in messages:
                # System and developer instructions stay in the group: the same
                # question under other instructions is another request.
                said = _take_text(m) if isinstance(m, dict) and m.get("role") in _CONVERSATION_ROLES else None
                if said is not None:
                    lines.append(f"{m.get('role')}: {said}")
            text = "\n".join(lines) if lines else None
        else:
            for m in reversed(messages):
                if isinstance(m, dict) and m.get("role") == "user":
                    text = _take_text(m)  # the rest of the conversation stays in the group
                    break
    if not text or len(text) > MAX_TEXT_CHARS:
        return None
    return text, _sorted(obj)


class Embedder:
    """Embeds a text through ``model`` (``cache.embedding_model``); ``make`` builds the
    embeddings call for a request body (``server.plan.Planner.internal_embeddings``)."""

    __slots__ = ("_make", "model")

    def __init__(self, model: str, make: Callable[[bytes], Call]) -> None:
        self.model = model
        self._make = make

    async def embed(self, text: str) -> tuple[Any, int, float | None]:
        """The vector (float32, numpy), the input tokens it was accounted with and its
        cost (None: unpriced). Raises GatewayError (the embeddings call failed or its
        answer is not a list of embeddings)."""
        call = self._make(_encode({"model": self.model, "input": text, "encoding_format": "base64"}))
        data, _, _ = await unary(call)
        return vector_of(data, model=self.model), call.used_in, call.used_cost


def vector_of(data: bytes, *, model: str) -> Any:
    """The first vector of an embeddings answer, float32 (numpy): base64 as asked for,
    or floats from a server that answers them anyway. GatewayError when there is none."""
    import numpy as np  # loaded with the vector index, not at start

    try:
        items = _decode_list(data).data
        if not items:
            raise ValueError("no vector")
        got = items[0].embedding
        if isinstance(got, bytes):
            if not got or len(got) % 4:
                raise ValueError(f"{len(got)} bytes is not a float32 vector")
            return np.frombuffer(got, dtype="<f4")
        return np.asarray(got, dtype=np.float32)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as e:
        raise GatewayError(f"embedding model {model!r} answered without a vector: {e}") from None


class Semantic:
    """The semantic half of one ``Cache``: its embedder and the process's vector index."""

    __slots__ = ("_embedder", "_excluded", "_failing", "_meters", "_mode", "_timeout_s", "vectors")

    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorIndex,
        *,
        mode: Mode,
        excluded: tuple[str, ...],
        meters: CacheMeters,
        timeout_s: float,
    ) -> None:
        self._embedder = embedder
        self._timeout_s = timeout_s  # the embedding's deadline: past it, a miss
        self.vectors = vectors
        self._mode = mode
        self._excluded = excluded
        self._meters = meters
        self._failing = False  # the last embedding failed: logged once an outage

    async def find(
        self,
        ticket: CacheTicket,
        call: Call,
        *,
        head: bytes,
        get: Callable[[str], Awaitable[Entry | None]],
        store_up: Callable[[], bool],
    ) -> tuple[str, Entry, float] | None:
        """The id, entry and similarity of the kept answer nearest ``call``'s text within
        ``ticket.threshold``, else None; the vector and group are left on the ticket, for the
        answer to be found by later requests once kept. ``get`` reads an entry,
        ``store_up`` says whether the store answered its last read."""
        meters = self._meters
        if not getattr(self.vectors, "in_step", True):
            # A shared index out of step with Redis finds nothing: no embedding paid for.
            meters.looked_up("semantic", "skip", 0.0)
            return None
        found = parts(call.body, endpoint=call.endpoint, mode=self._mode, excluded=self._excluded)
        if found is None:
            meters.looked_up("semantic", "skip", 0.0)
            return None
        text, group_body = found
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                vector, tokens, cost = await self._embedder.embed(text)
        except (GatewayError, TimeoutError) as e:
            meters.looked_up("semantic", "error", time.perf_counter() - t0)
            if not self._failing:  # once an outage, as the store's
                why = e.message if isinstance(e, GatewayError) else f"no answer within {self._timeout_s} s"
                log.warning("semantic cache lookups miss: the embedding failed: %s", why)
            self._failing = True
            return None
        self._failing = False
        from gateway.state.vectors import unit  # numpy: loaded with the index

        try:
            v = unit(vector)  # float32: what the ticket holds while its answer is relayed
        except ValueError:  # no direction (all zeros, not finite): nothing to compare
            v = None
        ticket.spent_tokens, ticket.spent_cost = tokens, cost
        if cost:
            ticket.cost = _encode(Cost(input_tokens_cost=cost, output_tokens_cost=0.0, total_cost=cost))
        debug = ticket.debug
        debug.input_tokens, debug.threshold = tokens, ticket.threshold
        if v is None:
            meters.looked_up("semantic", "miss", time.perf_counter() - t0)
            return None
        # The embedding model and mode are in the group: vectors of another model (a
        # reload, a replica on another config) are never compared with these.
        group = hashlib.blake2b(
            b"\n".join((head, self._embedder.model.encode(), self._mode.encode(), group_body)), digest_size=16
        ).hexdigest()
        ticket.vector, ticket.group = v, group
        near = await self.vectors.nearest(group, v, ticket.threshold)
        entry = None
        if near is not None:
            entry = await get(near[0])
            if entry is None and store_up():  # expired or evicted in the store: its vector goes too
                await self.vectors.remove(near[0])
        meters.looked_up("semantic", "miss" if entry is None else "hit", time.perf_counter() - t0)
        if entry is None or near is None:
            return None
        return near[0], entry, near[1]

    async def remember(self, ticket: CacheTicket) -> None:
        """A kept answer's vector added to the index (after its entry was stored)."""
        if ticket.vector is None or ticket.group is None:
            return
        try:
            await self.vectors.add(ticket.entry_id, ticket.namespace, ticket.group, ticket.vector, ticket.ttl_s)
        except ValueError as e:  # another dimension than the group's
            log.warning("semantic cache: vector not indexed: %s", e)
        except Exception:  # the answer is made: an index that fails costs its hits, not it
            log.exception("semantic cache: vector not indexed")

    @staticmethod
    def charge(ticket: CacheTicket, call: Call) -> None:
        """The embedding's tokens and cost added to what ``call`` is charged so far: what
        a hit or a failed relay is charged (a relayed answer's ``Call.charge`` adds them
        to its own usage)."""
        tokens, cost = ticket.spent_tokens, ticket.spent_cost
        call.used_in += tokens
        call.used_tokens += tokens
        # An unpriced embedding adds nothing known; an unpriced answer stays unknown.
        if cost is not None and call.used_cost is not None:
            call.used_cost += cost
