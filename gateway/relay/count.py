"""Token counts at an SDK's drop-in route (Anthropic's ``/v1/messages/count_tokens``,
Gemini's ``:countTokens``, the Responses API's ``/v1/responses/input_tokens``): relayed
to a target of the client's own dialect (a Responses count to a provider with
``responses: native``), whose upstream counts with the model's own tokenizer; counted
offline for any other target,
as the ledger counts a prompt (``accounting.tokens``), and answered in the client's
shape. The attempt loop is the completions' (retries, key rotation, fallbacks).

Nothing is accounted: a count uses no tokens and costs nothing.
"""

from __future__ import annotations

from gateway.relay.attempts import exchange, first_success
from gateway.relay.call import Call
from gateway.routing.table import Target


async def count(call: Call) -> tuple[bytes, int, list[tuple[str, str]]]:
    """The count in the client's shape, the index of the target that gave it and the
    upstream headers relayed to the client. All failing: the primary's error."""
    (data, headers), index, limiter = await first_success(call, lambda t, b, k: _attempt(call, t, b, k))
    if limiter is not None:
        limiter.release()
    return data, index, headers


async def _attempt(call: Call, target: Target, body: bytes, key: int) -> tuple[bytes, list[tuple[str, str]]]:
    client = call.client
    assert client is not None and client.inbound is not None, "token counts come from an SDK's drop-in route"
    if not (target.native or call.passthrough(target)):
        # ``body``: the request in OpenAI's form, counted as the ledger counts a prompt.
        tokens = call.ledger.prompt_tokens(endpoint="chat", model=target.model, body=body)
        return client.inbound.count_answer(tokens), []
    _, data, headers = await exchange(call, target, lambda: call.send(target, body, key, stream=False))
    return data, headers
