"""An embeddings answer: read whole, accounted, enriched, as ``relay.unary`` does for
completions (whose attempt loop runs this one's attempts).

An OpenAI-dialect or mock answer passes as bytes with ``usage.cost`` and
``extra_fields`` spliced in; a Gemini one is translated into OpenAI's list first
(``providers.gemini.embed``). An upstream that reports no usage (Gemini never does) has
the request's input counted by the gateway (``usage_estimated``). At a Gemini SDK
drop-in route the answer goes back in Gemini's shape: a Gemini target's as it came
(one embedContent's unwrapped), any other's translated.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, Raw

from gateway import codec
from gateway.accounting.usage import Usage, decode_usage, encode
from gateway.errors import UpstreamProtocolError
from gateway.providers.dialect import Embedder
from gateway.relay.attempts import exchange
from gateway.relay.call import Call
from gateway.relay.watch import add_cost
from gateway.routing.table import Target
from gateway.schemas.embeddings import EmbeddingsHead, EmbeddingsUsage, EncodingHead

_head = msgspec.json.Decoder(EmbeddingsHead).decode
_encoding = msgspec.json.Decoder(EncodingHead).decode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode


def _read_head(data: bytes) -> EmbeddingsHead:
    try:
        return _head(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"upstream returned a body that is not an embeddings list: {e}") from None


def request_shape(call: Call) -> EncodingHead:
    """The client's request as the relay shapes its answer by (see ``EncodingHead``)."""
    return _encoding(call.body)


def account(call: Call, target: Target, data: bytes, usage_raw: bytes | None) -> tuple[bytes, bool]:
    """``data`` with ``usage.cost`` (and, for an answer without usage, the gateway's
    count of the input); whether the usage is estimated. Records the request."""
    provider, ledger = target.provider, call.ledger
    if usage_raw is not None:
        try:
            usage = decode_usage(usage_raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{provider.name}' sent an unreadable usage object: {e}") from None
    else:
        prompt = ledger.prompt_tokens(endpoint="embeddings", model=target.model, body=call.body)
        usage = Usage(prompt_tokens=prompt, completion_tokens=0, total_tokens=prompt)
    cost = ledger.cost(provider.pricing.lookup(target.model), usage)
    ledger.record(provider=provider.name, usage=usage, cost=cost, estimated=usage_raw is None)
    call.charge(usage, cost)
    if usage_raw is not None:
        return (add_cost(data, usage_raw, encode(cost)) if cost is not None else data), False
    counted = EmbeddingsUsage(
        prompt_tokens=usage.prompt_tokens,
        total_tokens=usage.prompt_tokens,
        cost=Raw(encode(cost)) if cost is not None else UNSET,
    )
    return codec.splice_field(data, b"usage", encode(counted)), True


def _embedder(target: Target) -> Embedder:
    embedder = target.provider.wire.embedder
    assert embedder is not None, "only a provider whose dialect translates embeddings comes here"
    return embedder


async def attempt(call: Call, target: Target, body: bytes, key: int) -> tuple[bytes, list[tuple[str, str]]]:
    """One attempt (``relay.unary``'s signature): the enriched answer and the upstream
    headers relayed to the client."""
    provider = target.provider
    _, data, headers = await exchange(call, target, lambda: call.send(target, body, key, stream=False))
    options = call.options
    translated = provider.wire.embedder is not None
    upstream_data = data
    shape = request_shape(call) if translated or call.client is not None else None
    if translated:
        assert shape is not None
        data = _embedder(target).response(data, model=target.model, base64=shape.encoding_format == "base64")
    head = _read_head(data)
    usage_raw = bytes(head.usage) if head.usage is not UNSET else None
    data, estimated = account(call, target, data, None if usage_raw == b"null" else usage_raw)
    client = call.client
    if client is not None:
        assert shape is not None and client.embedder is not None
        single = shape.input is not UNSET and bytes(shape.input)[:1] == b'"'
        if call.passthrough(target):
            return client.embedder.native_answer(upstream_data, single=single), headers
        return client.embedder.client_answer(data, single=single), headers
    extra = codec.encode(
        call.extra_fields(
            target,
            estimated=estimated,
            raw_request=body if options.raw_request else None,
            raw_response=upstream_data if options.raw_response else None,
        )
    )
    if head.extra_fields is not UNSET:  # an upstream that is itself a gateway: its field replaced
        fields = _fields(data)
        fields["extra_fields"] = Raw(extra)
        return codec.encode(fields), headers
    return codec.splice_field(data, b"extra_fields", extra), headers
