"""The response cache's keys (docs/cache.md): which entry a request's answer is kept
under, and the namespace it belongs to.

A direct key is a hash of the canonical request: the targets it resolved to (aliases
applied), its endpoint, its namespace, its caller (unless the cache is ``shared``) and
its body decoded and encoded again with sorted keys and no whitespace, without the
fields that do not change the answer (``EXCLUDED``). Equal requests get equal keys
whatever their key order, spacing or number formatting; a stream and a non-streaming
request share one entry. Nothing a client sends reaches a store key: ids and namespaces
are digests."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from gateway.relay.call import Call

# Top-level request fields that do not change the answer: who asked (user,
# safety_identifier, metadata), whether and how it streams (the form, not the answer),
# whether the upstream keeps it, its prompt-cache routing hints, its latency tier; and
# the gateway's own (model and fallbacks: their resolved targets go into the key instead).
EXCLUDED = (
    "model",
    "fallbacks",
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
)
# Changed whenever what goes into a key or an entry changes: old entries then miss.
KEY_VERSION = "2"

_decode_any = msgspec.json.decode
_sorted = msgspec.json.Encoder(order="sorted").encode


def namespace_id(key: str | None) -> str:
    """The store's name for an ``x-bf-cache-key`` (any caller's): a digest, so a client's
    string never reaches a store key."""
    return hashlib.blake2b((key or "").encode(), digest_size=8).hexdigest()


def canonical(body: bytes) -> bytes:
    """The request body as the key sees it: decoded, the fields that do not change the
    answer removed, encoded with sorted keys and no whitespace."""
    obj = _decode_any(body)
    if isinstance(obj, dict):
        for name in EXCLUDED:
            obj.pop(name, None)
    return _sorted(obj)


class _Digests:
    """The digest of each recent body's canonical form, by the body's exact bytes: the
    same bytes sent again (a retry, an evaluation rerun, the common hit) are not decoded
    and encoded again. Bounded by the bytes of the bodies it holds; forgotten whole when
    full (a dict, no order kept: ~1 µs a hit dearer than nothing, ~3 µs cheaper than the
    decode)."""

    __slots__ = ("_by_body", "_bytes", "_max_body", "_max_bytes")

    def __init__(self, *, max_bytes: int = 4 * 1024 * 1024, max_body: int = 64 * 1024) -> None:
        self._by_body: dict[bytes, bytes] = {}
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_body = max_body  # a larger body is decoded every time

    def of(self, body: bytes) -> bytes:
        digest = self._by_body.get(body)
        if digest is None:
            digest = hashlib.blake2b(canonical(body), digest_size=16).digest()
            if len(body) <= self._max_body:
                if self._bytes + len(body) > self._max_bytes:
                    self._by_body.clear()
                    self._bytes = 0
                self._by_body[body] = digest
                self._bytes += len(body)
        return digest


_digests = _Digests()


def key_head(call: Call, *, namespace: str | None, caller: str | None) -> bytes:
    """What a key holds besides the body: the version, endpoint, namespace, caller and
    the targets the request resolved to."""
    targets = [f"{t.provider.name}/{t.model}" for t, _ in call.targets]
    return _sorted([KEY_VERSION, call.endpoint, namespace or "", caller or "", targets])


def direct_key(call: Call, *, namespace: str | None, caller: str | None, head: bytes | None = None) -> str:
    """The entry id of ``call``'s answer: 32 hex digits."""
    if head is None:
        head = key_head(call, namespace=namespace, caller=caller)
    return hashlib.blake2b(head + b"\n" + _digests.of(call.body), digest_size=16).hexdigest()
