"""The responses the gateway keeps for OpenAI's Responses API.

The Responses API is served by translation: a request becomes a chat request to any
provider, which keeps nothing. So the gateway keeps each answered response itself, in the
state store (this process's memory, the supervisor's for its workers, or Redis shared by
every process and replica), for ``store_ttl_s``, owned by the credential that made it:

- a new request's ``previous_response_id`` continues the conversation (``conversation``);
- ``GET``, ``DELETE /v1/responses/{id}`` and ``GET .../input_items`` read and delete it
  (``get``, ``delete``, ``input_items``; routes in ``server.responses_routes``).

A response a provider with ``responses: native`` served is kept by that provider: the
gateway records only where (``index``: the provider's name and the model, owned as
above), so those routes reach it there (``upstream``).

One record per response (``StoredResponse``): the id of the response it continued, this
request's input items (each with an id) and the Response object as answered. A
conversation is rebuilt by walking the ids back, oldest first: each record's input items,
then its response's output items. Deleting or losing a response (expired, or forgotten by
a full memory store) ends every conversation that passes through it.

Who may read or continue a response: its owner only (``owner``: the caller's virtual
key or token as governance knows it; with access control off every caller is the same
anonymous caller, as every key of one OpenAI organisation sees its responses), compared
in constant time. Another owner's id answers exactly as an unknown one.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Literal, NamedTuple

import msgspec
from msgspec import Raw, Struct

from gateway.errors import InvalidRequest, NotFound, StoreUnavailable
from gateway.governance import Principal
from gateway.metrics import Metrics
from gateway.providers.responses import input_items
from gateway.relay.call import Keep
from gateway.routing.table import Target
from gateway.state import Store
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.responses")

# How far back previous_response_id is followed: a conversation of 1000 turns is far
# past any context window, and each link is one store read.
MAX_CHAIN = 1000
# A response id: "resp_" and up to 128 letters and digits (the gateway's own are 48 hex
# digits, as OpenAI's). Anything else is answered as an unknown id, never quoted back.
RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9]{1,128}")
# The id prefix an input item gets when it came without one, by its type.
ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
Order = Literal["asc", "desc"]


class Upstream(Struct, kw_only=True):
    """Where a response served natively is kept: its provider (by name) and the model
    it was asked of (which of the provider's keys may read it)."""

    provider: str
    model: str


class StoredResponse(Struct, kw_only=True, omit_defaults=True):
    """One kept response, as the store holds it (msgspec JSON): the gateway's own (its
    input items and Response), or only an index entry naming the upstream that keeps it
    (``upstream``; then ``input`` and ``response`` are empty)."""

    previous_id: str | None = None  # the response this one continued
    input: Raw = Raw(b"[]")  # this request's input items, a JSON array, every item with an id
    response: Raw = Raw(b"{}")  # the Response object as answered
    upstream: Upstream | None = None


class _ResponseHead(Struct):
    """What is read of a Response: its id and its output items."""

    id: str
    output: list[Raw] = []


class _ResponseId(Struct):
    id: str


class _ItemHead(Struct):
    id: str | None = None
    type: str | None = None
    role: str | None = None


class ResponseItemList(Struct):
    """``GET /v1/responses/{id}/input_items``: a cursor page."""

    object: str
    data: list[Raw]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ResponseDeleted(Struct):
    """``DELETE /v1/responses/{id}``."""

    id: str
    object: str
    deleted: bool


class ResponseNotFound(NotFound):
    code = "response_not_found"


class PreviousResponseNotFound(InvalidRequest):
    """OpenAI's answer to a ``previous_response_id`` it does not have: a 400."""

    code = "previous_response_not_found"


_encode = msgspec.json.Encoder().encode
_decode_stored = msgspec.json.Decoder(StoredResponse).decode
_decode_head = msgspec.json.Decoder(_ResponseHead).decode
_decode_id = msgspec.json.Decoder(_ResponseId).decode
_decode_items = msgspec.json.Decoder(list[Raw]).decode
_decode_item_head = msgspec.json.Decoder(_ItemHead).decode
_decode_fields = msgspec.json.Decoder(dict[str, Raw]).decode


def new_response_id() -> str:
    """A fresh response id: 192 random bits, unguessable."""
    return "resp_" + secrets.token_hex(24)


def not_found() -> ResponseNotFound:
    """The one 404 of an unknown, malformed, expired, deleted or another owner's id."""
    return ResponseNotFound("No such response: unknown, expired, deleted, or stored for another credential.")


def with_item_ids(input_items: bytes) -> bytes:
    """The JSON array ``input_items`` with an id on every item that came without one
    (``msg_...`` for a message, by type for the others); items with one are copied as
    they are. A ValueError when it is not an array of objects."""
    try:
        items = _decode_items(input_items)
        out: list[Raw] = []
        changed = False
        for item in items:
            head = _decode_item_head(item)
            if head.id:
                out.append(item)
                continue
            kind = head.type or ("message" if head.role is not None else "item")
            fields = _decode_fields(item)
            fields = {"id": Raw(_encode(f"{ITEM_PREFIX.get(kind, 'item')}_{secrets.token_hex(24)}")), **fields}
            if head.type is None and head.role is not None:
                fields["type"] = Raw(b'"message"')
            out.append(Raw(_encode(fields)))
            changed = True
    except msgspec.DecodeError as e:
        raise ValueError(f"input items: not a JSON array of objects with string ids: {e}") from None
    return _encode(out) if changed else input_items


class Page(NamedTuple):
    """What ``GET .../input_items`` asks for (``ResponseStates.input_items``)."""

    after: str | None
    before: str | None
    limit: int
    order: Order


def page(query: Mapping[str, str]) -> Page:
    """The page an ``input_items`` query names; a 400 for a malformed one."""
    order: Order = "desc"
    if "order" in query:
        if query["order"] not in ("asc", "desc"):
            raise InvalidRequest("order must be 'asc' or 'desc'", param="order", code="invalid_value")
        order = "asc" if query["order"] == "asc" else "desc"
    limit = DEFAULT_LIMIT
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            raise InvalidRequest(
                f"limit must be an integer between 1 and {MAX_LIMIT}", param="limit", code="invalid_value"
            ) from None
    return Page(query.get("after") or None, query.get("before") or None, limit, order)


def owner(principal: Principal | None) -> str:
    """Whose responses a caller reads and continues: its principal's, else the anonymous
    caller's (access control off, or an anonymous principal)."""
    return principal.id if principal is not None and principal.kind != "anonymous" else "anonymous"


class ResponseStates:
    """Keeps, rebuilds, reads and deletes responses; one per config, built by the app."""

    __slots__ = ("_max_conversation", "_max_record", "_metrics", "_store", "_ttl_s")

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float,
        max_record_bytes: int,
        max_conversation_bytes: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_record = max_record_bytes
        self._max_conversation = max_conversation_bytes
        self._metrics = metrics

    async def save(self, owner: str, *, response: bytes, input_items: bytes, previous_id: str | None) -> bool:
        """Keeps ``response`` (the Response object as answered; its ``id`` one of
        ``new_response_id``'s) with ``input_items`` (the JSON array of this request's
        input items in item form) and the response it continued. False when it was not
        kept: larger than ``max_record_bytes``, or the store unavailable (logged either
        way; the client has its answer, a later ``previous_response_id`` finds nothing).
        A ValueError for a response or items that are not what is described here."""
        try:
            head = _decode_head(response)
        except msgspec.DecodeError as e:
            raise ValueError(f"response: not a Response object: {e}") from None
        if not RESPONSE_ID.fullmatch(head.id):
            raise ValueError(f"response id {head.id[:40]!r} is not resp_ and 1-128 letters and digits")
        items = with_item_ids(input_items)
        record = _encode(StoredResponse(previous_id=previous_id, input=Raw(items), response=Raw(response)))
        if len(record) > self._max_record:
            log.warning(
                "response %s not stored: its record is %d bytes, over responses.max_record_bytes (%d); "
                "it cannot be retrieved or continued",
                head.id,
                len(record),
                self._max_record,
            )
            return False
        try:
            await self._store.response_put(head.id, owner, record, ttl_s=self._ttl_s)
        except StoreDown as e:
            self._store_error("write", e)
            return False
        return True

    def keeper(self, owner: str, *, body: bytes, previous_id: str | None) -> Keep:
        """What keeps the answer to the Responses request ``body`` once it is complete
        (``Call.keep``): its Response, with the request's input items and the response
        it continued; served natively (``native``: the target), only where it is kept."""

        async def keep(response: bytes, *, native: Target | None = None) -> None:
            try:
                if native is not None:
                    await self.index(owner, response=response, provider=native.provider.name, model=native.model)
                else:
                    await self.save(owner, response=response, input_items=input_items(body), previous_id=previous_id)
            except ValueError:
                log.exception("a Response was not kept")

        return keep

    async def index(self, owner: str, *, response: bytes, provider: str, model: str) -> bool:
        """Records that ``response`` (a Response object as answered), served natively by
        ``provider`` for ``model``, is kept by that upstream, so the gateway's routes
        reach it there. False when the store is unavailable (logged). A ValueError for a
        response without a well-formed id."""
        try:
            response_id = _decode_id(response).id
        except msgspec.DecodeError as e:
            raise ValueError(f"response: not a Response object with an id: {e}") from None
        if not RESPONSE_ID.fullmatch(response_id):
            raise ValueError(f"response id {response_id[:40]!r} is not resp_ and 1-128 letters and digits")
        record = _encode(StoredResponse(upstream=Upstream(provider=provider, model=model)))
        try:
            await self._store.response_put(response_id, owner, record, ttl_s=self._ttl_s)
        except StoreDown as e:
            self._store_error("write", e)
            return False
        return True

    async def upstream(self, owner: str, response_id: str) -> Upstream | None:
        """Where ``owner``'s response ``response_id`` is kept when an upstream keeps it;
        None when the gateway keeps it itself, or it is unknown or another owner's."""
        record = await self._record(owner, response_id)
        return None if record is None else _decode_stored(record).upstream

    async def forget(self, response_id: str) -> None:
        """Drops the index entry of a response its upstream has deleted."""
        try:
            await self._store.response_delete(response_id)
        except StoreDown as e:
            self._store_error("delete", e)

    async def conversation(self, owner: str, previous_id: str) -> bytes:
        """The JSON array of items a request continuing ``previous_id`` comes after:
        oldest first, each response's input items, then its output items. An id that is
        unknown, expired, deleted or another owner's is a 400 previous_response_not_found,
        as is a chain with a link gone; a chain over MAX_CHAIN responses or
        ``max_conversation_bytes`` a 400 too."""
        if not RESPONSE_ID.fullmatch(previous_id):
            raise PreviousResponseNotFound(
                "Invalid 'previous_response_id': expected 'resp_' followed by letters and digits.",
                param="previous_response_id",
                code="invalid_value",
            )
        chain = await self._chain(owner, previous_id, strict=True)
        return _encode(_items(chain))

    async def _chain(
        self, owner: str, first_id: str, *, strict: bool, first: bytes | None = None
    ) -> list[StoredResponse]:
        """The records of ``first_id`` and the responses it continued, newest first.
        ``strict`` (a conversation to continue): a link gone, kept upstream or over the
        bounds is a 400. Otherwise (a listing) the walk stops there, with what it has.
        ``first``: the record of ``first_id`` when the caller has read it already
        (``_record``), so it is not read twice."""
        chain: list[StoredResponse] = []
        total = 0
        at: str | None = first_id
        while at is not None:
            if len(chain) == MAX_CHAIN:
                if not strict:
                    break
                raise InvalidRequest(
                    f"the conversation of previous_response_id is longer than {MAX_CHAIN} responses; "
                    "start a new one with the context it needs",
                    param="previous_response_id",
                    code="conversation_too_long",
                )
            record = first if not chain and first is not None else await self._record(owner, at)
            if record is None:
                if not strict:
                    break
                if at == first_id:
                    message = f"Previous response with id '{first_id}' not found."
                else:
                    message = (
                        f"Previous response with id '{first_id}' continues '{at}', which has expired or "
                        "was deleted: the conversation cannot be rebuilt."
                    )
                raise PreviousResponseNotFound(message, param="previous_response_id")
            total += len(record)
            if total > self._max_conversation:
                if not strict:
                    break
                raise InvalidRequest(
                    f"the conversation of previous_response_id is over {self._max_conversation} bytes "
                    "(responses.max_conversation_bytes); start a new one with the context it needs",
                    param="previous_response_id",
                    code="conversation_too_long",
                )
            stored = _decode_stored(record)
            if stored.upstream is not None:  # its items are the upstream's, not here
                if not strict:
                    break
                raise PreviousResponseNotFound(
                    f"Previous response with id '{at}' is kept by provider '{stored.upstream.provider}' (served "
                    "natively): continue it with a model of that provider.",
                    param="previous_response_id",
                )
            chain.append(stored)
            at = stored.previous_id
        return chain

    async def kept_conversation(self, owner: str, previous_id: str) -> bytes | None:
        """``conversation`` when the gateway keeps ``owner``'s response ``previous_id``
        (a translated answer); None when it does not know it or an upstream keeps it."""
        if not RESPONSE_ID.fullmatch(previous_id):
            return None
        record = await self._record(owner, previous_id)
        if record is None or _decode_stored(record).upstream is not None:
            return None
        return _encode(_items(await self._chain(owner, previous_id, strict=True, first=record)))

    async def get(self, owner: str, response_id: str) -> bytes:
        """The Response object as it was answered; 404 when unknown, expired, deleted or
        another owner's."""
        stored = await self._own(owner, response_id)
        if stored is None:
            raise not_found()
        return bytes(stored.response)

    async def delete(self, owner: str, response_id: str) -> bool:
        """False, and nothing deleted, when unknown, expired or another owner's."""
        if await self._own(owner, response_id) is None:
            return False
        try:
            return await self._store.response_delete(response_id)
        except StoreDown as e:
            self._store_error("delete", e)
            raise StoreUnavailable("the gateway's state store is unavailable; try again shortly") from None

    async def input_items(
        self,
        owner: str,
        response_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = DEFAULT_LIMIT,
        order: Order = "desc",
    ) -> bytes:
        """A page of the response's input items (``ResponseItemList``), as OpenAI lists
        them: the conversation it continued (oldest first: each earlier request's input
        items, then that response's output items; as far back as it is still kept), then
        its own request's input items. In ``order``, those strictly after the item
        ``after`` and before the item ``before``; at most ``limit``, the first ones, or
        the last ones when only ``before`` is given (the page just before the cursor).
        ``has_more``: items left beyond the page on the side it was cut."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", param="limit", code="invalid_value")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order must be 'asc' or 'desc'", param="order", code="invalid_value")
        stored = await self._own(owner, response_id)
        if stored is None:
            raise not_found()
        items = _decode_items(stored.input)
        if stored.previous_id is not None:
            items = _items(await self._chain(owner, stored.previous_id, strict=False)) + items
        if order == "desc":
            items.reverse()
        ids = [_decode_item_head(i).id for i in items]
        start = 0 if after is None else _position(ids, after, "after") + 1
        end = len(items) if before is None else _position(ids, before, "before")
        window, window_ids = items[start:end], ids[start:end]
        has_more = len(window) > limit
        if before is not None and after is None:  # the page just before the cursor
            page, page_ids = window[-limit:], window_ids[-limit:]
        else:
            page, page_ids = window[:limit], window_ids[:limit]
        listed = ResponseItemList(
            object="list",
            data=page,
            first_id=page_ids[0] if page_ids else None,
            last_id=page_ids[-1] if page_ids else None,
            has_more=has_more,
        )
        return _encode(listed)

    async def _own(self, owner: str, response_id: str) -> StoredResponse | None:
        """The record of a response the gateway keeps itself (not an upstream's)."""
        record = await self._record(owner, response_id)
        stored = None if record is None else _decode_stored(record)
        return stored if stored is not None and stored.upstream is None else None

    async def _record(self, owner: str, response_id: str) -> bytes | None:
        """The record, when ``response_id`` is well formed, kept, and ``owner``'s."""
        if not RESPONSE_ID.fullmatch(response_id):
            return None
        try:
            found = await self._store.response_get(response_id)
        except StoreDown as e:
            self._store_error("read", e)
            raise StoreUnavailable("the gateway's state store is unavailable; try again shortly") from None
        if found is None or not hmac.compare_digest(found[0].encode(), owner.encode()):
            return None
        return found[1]

    def _store_error(self, what: str, e: Exception) -> None:
        if self._metrics is not None:
            self._metrics.store_errors += 1
        log.error("state store unavailable: stored response %s failed: %s", what, e)


def _items(chain: list[StoredResponse]) -> list[Raw]:
    """A conversation's items, oldest first, from its records newest first: each
    request's input items, then its response's output items."""
    items: list[Raw] = []
    for stored in reversed(chain):
        items += _decode_items(stored.input)
        items += _decode_head(stored.response).output
    return items


def _position(ids: list[str | None], item_id: str, param: str) -> int:
    try:
        return ids.index(item_id)
    except ValueError:
        raise InvalidRequest(
            f"'{param}' names no input item of this response", param=param, code="invalid_value"
        ) from None
