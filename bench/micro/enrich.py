"""Response side: the answer's head, usage.cost and extra_fields spliced into its bytes."""

from __future__ import annotations

from bench.micro import Cases, main_for
from bench.micro.fixtures import RESPONSE, TABLE, USAGE_RAW
from gateway import codec
from gateway.accounting.usage import decode_usage, encode
from gateway.relay.watch import add_cost
from gateway.schemas.response import ExtraFields

PRICE = TABLE.resolve("mock/gpt-4o-mini").provider.pricing.lookup("gpt-4o-mini")
assert PRICE is not None
USAGE = decode_usage(USAGE_RAW)
EXTRA = ExtraFields(
    request_type="chat_completion", provider="p", model_requested="m", model_deployment="m", latency=1.0
)

CASES: Cases = {
    "response head decode (600 B)": lambda: codec.response_head(RESPONSE),
    "usage decode": lambda: decode_usage(USAGE_RAW),
    "cost arithmetic (cached price)": lambda: PRICE.cost(USAGE),
    "usage.cost splice": lambda: add_cost(RESPONSE, USAGE_RAW, encode(PRICE.cost(USAGE))),
    "extra_fields encode + splice": lambda: codec.enrich(RESPONSE, codec.response_head(RESPONSE), EXTRA),
}

if __name__ == "__main__":
    main_for("enrich: usage.cost and extra_fields", CASES)
