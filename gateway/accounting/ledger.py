"""Accounting for one gateway: turns a finished request's usage into tokens and cost,
and records them (metrics now; a store for budgets later)."""

from __future__ import annotations

import logging

from gateway.accounting.pricing import Price, UnpricedLog
from gateway.accounting.tokens import (
    CHAR_ESTIMATE,
    Tokenizers,
    count_chat_prompt,
    count_embeddings_input,
    count_text_prompt,
)
from gateway.accounting.usage import Cost, Usage, encode
from gateway.metrics import Metrics
from gateway.providers import Endpoint

log = logging.getLogger("gateway.accounting")


class Ledger:
    __slots__ = ("metrics", "tokenizers", "unpriced_log")

    def __init__(self, *, metrics: Metrics, tokenizers: Tokenizers) -> None:
        self.metrics = metrics
        self.tokenizers = tokenizers
        self.unpriced_log = UnpricedLog()  # shared by every provider: one rate limit

    def unpriced(self, provider: str) -> None:
        self.metrics.for_provider(provider).unpriced += 1

    def prompt_tokens(self, *, endpoint: Endpoint, model: str, body: bytes, exact: bool = True) -> int:
        """The request's prompt tokens: with the BPE tables, or, with ``exact=False``,
        estimated without loading them (~66 MB)."""
        tok = self.tokenizers.for_model(model) if exact else CHAR_ESTIMATE
        try:
            if endpoint == "chat":
                return count_chat_prompt(tok, body)
            if endpoint == "embeddings":
                return count_embeddings_input(tok, body)
            return count_text_prompt(tok, body)
        except ValueError:  # msgspec's errors; the request was validated, so rare
            log.warning("could not count the prompt of a %s request", endpoint)
            return 0

    @staticmethod
    def cost(price: Price | None, usage: Usage) -> Cost | None:
        return None if price is None else price.cost(usage)

    @staticmethod
    def encode_cost(cost: Cost | None) -> bytes | None:
        return None if cost is None else encode(cost)

    def record(self, *, provider: str, usage: Usage, cost: Cost | None, estimated: bool) -> None:
        m = self.metrics.for_provider(provider)
        m.tokens_in += usage.prompt_tokens
        m.tokens_out += usage.completion_tokens
        if cost is not None:
            m.cost_usd += cost.total_cost
        if estimated:
            m.estimated += 1
