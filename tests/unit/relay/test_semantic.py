"""What the semantic lookup embeds of a request and which requests it compares it with
(``relay.semantic.parts``); the lookup itself runs end to end in
tests/integration/test_cache_semantic.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.relay.cachekey import EXCLUDED
from gateway.relay.semantic import MAX_TEXT_CHARS, parts


def _parts(body: dict[str, Any], *, endpoint: str = "chat", mode: Any = "last_user") -> tuple[str, bytes] | None:
    return parts(json.dumps(body).encode(), endpoint=endpoint, mode=mode, excluded=EXCLUDED)


def _chat(*messages: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **more}


SYSTEM = {"role": "system", "content": "Be brief."}


def test_semantic_embeds_the_last_user_message_and_groups_by_the_rest() -> None:
    first = {"role": "user", "content": "first question"}
    got = _parts(_chat(SYSTEM, first, {"role": "assistant", "content": "a"}, {"role": "user", "content": "Q?"}))
    assert got is not None and got[0] == "Q?"
    other = _parts(_chat(SYSTEM, first, {"role": "assistant", "content": "a"}, {"role": "user", "content": "P?"}))
    assert other is not None and other[1] == got[1]  # only the embedded text differs
    earlier = _parts(_chat(SYSTEM, {"role": "user", "content": "Q?"}))
    assert earlier is not None and earlier[1] != got[1]  # another conversation


def test_semantic_group_ignores_what_the_key_ignores_but_not_parameters() -> None:
    q = {"role": "user", "content": "Q?"}
    base = _parts(_chat(q))
    assert base is not None
    assert _parts(_chat(q, stream=True, user="u", stream_options={"include_usage": True})) == base
    other = _parts(_chat(q, temperature=0.1))
    assert other is not None and other[1] != base[1]


def test_semantic_text_parts_are_joined_and_images_alone_are_not_embedded() -> None:
    content = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "this"},
    ]
    got = _parts(_chat({"role": "user", "content": content}))
    assert got is not None and got[0] == "look at\nthis"
    assert _parts(_chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]})) is None
    assert _parts(_chat(SYSTEM)) is None  # no user message
    assert _parts(_chat({"role": "user", "content": "x" * (MAX_TEXT_CHARS + 1)})) is None


def test_semantic_conversation_mode_embeds_the_turns_and_groups_the_instructions() -> None:
    turns = [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
        {"role": "user", "content": "R?"},
    ]
    got = _parts(_chat(SYSTEM, *turns), mode="conversation")
    assert got is not None and got[0] == "user: Q?\nassistant: A.\nuser: R?"
    reworded = [
        {"role": "user", "content": "Q!"},
        {"role": "assistant", "content": "A!"},
        {"role": "user", "content": "R!"},
    ]
    other = _parts(_chat(SYSTEM, *reworded), mode="conversation")
    assert other is not None and other[1] == got[1]  # the turns' texts are embedded, not grouped
    instructed = _parts(_chat({"role": "system", "content": "Be long."}, *turns), mode="conversation")
    assert instructed is not None and instructed[1] != got[1]  # other instructions: not compared
    shorter = _parts(_chat(SYSTEM, turns[0]), mode="conversation")
    assert shorter is not None and shorter[1] != got[1]  # the conversation's shape is grouped


@pytest.mark.parametrize("mode", ["last_user", "conversation"])
def test_semantic_images_stay_in_the_group(mode: Any) -> None:
    def asked(url: str) -> tuple[str, bytes] | None:
        content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]
        return _parts(_chat({"role": "user", "content": content}), mode=mode)

    cat, dog = asked("https://x/cat.png"), asked("https://x/dog.png")
    assert cat is not None and dog is not None and cat[0] == dog[0]  # the same words
    assert cat[1] != dog[1]  # about another image: not compared


def test_semantic_text_completion_embeds_its_prompt() -> None:
    got = _parts({"model": "m", "prompt": "say hi", "max_tokens": 5}, endpoint="text")
    assert got is not None and got[0] == "say hi"
    listed = _parts({"model": "m", "prompt": ["a", "b"], "max_tokens": 5}, endpoint="text")
    joined = _parts({"model": "m", "prompt": "a\nb", "max_tokens": 5}, endpoint="text")
    assert listed is not None and joined is not None and listed[0] == joined[0] == "a\nb"
    assert listed[1] != joined[1]  # two prompts want two choices: not compared with one
    assert _parts({"model": "m", "prompt": [1, 2, 3]}, endpoint="text") is None  # token ids
    assert _parts({"model": "m", "prompt": "say hi", "echo": True}, endpoint="text") is None  # echoes its own


class _Fixed:
    """The embedding collaborator: one fixed vector for every text, under a model name
    (the lookup's grouping and removal are under test, not the embeddings call)."""

    def __init__(self, model: str) -> None:
        self.model = model

    async def embed(self, text: str) -> tuple[list[float], int, float | None]:
        return [1.0, 0.0, 0.0], 3, 0.001


def _lookup(model: str, index: Any) -> Any:
    from gateway.metrics import CacheMeters
    from gateway.relay.semantic import Semantic

    return Semantic(
        _Fixed(model),  # type: ignore[arg-type]
        index,
        mode="last_user",
        excluded=EXCLUDED,
        meters=CacheMeters(),
        timeout_s=1.0,
    )


def _ticket(entry_id: str) -> Any:
    from types import SimpleNamespace

    from gateway.relay.cache import CacheTicket

    ticket = CacheTicket(SimpleNamespace(), entry_id, "ns", ttl_s=60.0, keep=True)  # type: ignore[arg-type]
    ticket.threshold = 0.8
    return ticket


def test_semantic_vectors_of_another_embedding_model_are_never_compared() -> None:
    asyncio.run(_another_model())


async def _another_model() -> None:
    from gateway.state.vectors import EmbeddedVectorIndex
    from tests.unit.relay.calls import make_call

    index = EmbeddedVectorIndex()
    body = json.dumps(_chat({"role": "user", "content": "Q?"})).encode()
    kept = object()

    async def get(entry_id: str) -> Any:
        return kept if entry_id == "first" else None

    small, other = _lookup("up/small", index), _lookup("up/other", index)
    first = _ticket("first")
    assert await small.find(first, make_call([], body=body), head=b"h", get=get, store_up=lambda: True) is None
    await small.remember(first)
    found = await small.find(_ticket("again"), make_call([], body=body), head=b"h", get=get, store_up=lambda: True)
    assert found is not None and found[0] == "first" and found[1] is kept
    # The same vector from another model (a reload, a replica on another config): a miss.
    assert await other.find(_ticket("x"), make_call([], body=body), head=b"h", get=get, store_up=lambda: True) is None


def test_semantic_vector_removed_only_when_the_store_says_its_entry_is_gone() -> None:
    asyncio.run(_removed_when_gone())


async def _removed_when_gone() -> None:
    from gateway.state.vectors import EmbeddedVectorIndex
    from tests.unit.relay.calls import make_call

    index = EmbeddedVectorIndex()
    body = json.dumps(_chat({"role": "user", "content": "Q?"})).encode()
    lookup = _lookup("up/small", index)

    async def gone(entry_id: str) -> Any:
        return None

    first = _ticket("first")
    await lookup.find(first, make_call([], body=body), head=b"h", get=gone, store_up=lambda: True)
    await lookup.remember(first)
    assert len(index) == 1
    # The store did not answer (down, or skipped after a failure): the vector stays.
    await lookup.find(_ticket("b"), make_call([], body=body), head=b"h", get=gone, store_up=lambda: False)
    assert len(index) == 1
    # The store answered that the entry is gone: its vector goes too.
    await lookup.find(_ticket("c"), make_call([], body=body), head=b"h", get=gone, store_up=lambda: True)
    assert len(index) == 0


@pytest.mark.parametrize(
    "embedding",
    [
        '"AACAPwAAAEAAAEBA"',  # base64 of float32 1, 2, 3 (little-endian), as asked for
        "[1.0, 2.0, 3.0]",  # floats from a server that ignores encoding_format
    ],
)
def test_semantic_vector_read_from_base64_or_floats(embedding: str) -> None:
    from gateway.relay.semantic import vector_of

    data = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":%s}]}' % embedding.encode()
    assert vector_of(data, model="m").tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "data",
    [b'{"data":[]}', b'{"data":[{"embedding":"AACA"}]}', b'{"data":[{"embedding":""}]}', b'{"error":{}}', b"[1]"],
)
def test_semantic_no_vector_is_a_gateway_error(data: bytes) -> None:
    from gateway.errors import GatewayError
    from gateway.relay.semantic import vector_of

    with pytest.raises(GatewayError, match="answered without a vector"):
        vector_of(data, model="m")
