"""Request side of gateway/codec.py: validation (the typed head decode) and the
upstream body (model swap, gateway fields, forced stream usage)."""

from __future__ import annotations

from bench.micro import Cases, main_for
from bench.micro.fixtures import BARE, REQUEST
from gateway import codec

CASES: Cases = {
    "validate chat request (1 KB)": lambda: codec.decode_chat(REQUEST),
    "upstream body, model swapped": lambda: codec.upstream_body(
        REQUEST, model="gpt-4o-mini", rewrite_model=True, has_gateway_fields=False
    ),
    "upstream body, model swapped + stream usage forced": lambda: codec.upstream_body(
        REQUEST, model="gpt-4o-mini", rewrite_model=True, has_gateway_fields=False, force_usage=True
    ),
    "upstream body, bare model (no copy)": lambda: codec.upstream_body(
        BARE, model="gpt-4o-mini", rewrite_model=False, has_gateway_fields=False
    ),
}

if __name__ == "__main__":
    main_for("codec: request validation and upstream body", CASES)
