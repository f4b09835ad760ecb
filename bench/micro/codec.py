"""Request side of gateway/codec.py: validation (the typed head decode) and the
upstream body (model swap, gateway fields, forced stream usage)."""

from __future__ import annotations

import msgspec

from bench.micro import Cases, main_for
from bench.micro.fixtures import BARE, REQUEST
from gateway import codec, screen

# Beside the 1 KB request: 18 KB of prose and a 9 KB agent request (tool schemas).
PROSE = msgspec.json.encode(
    {"model": "mock/m", "messages": [{"role": "user", "content": "Explain TCP and UDP in detail, please.\n " * 450}]}
)
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a place and a date, in the unit asked",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "array", "items": {"type": "integer"}},
            },
        },
    },
}
AGENT = msgspec.json.encode(
    {
        "model": "mock/m",
        "messages": [{"role": "user", "content": "Fix this:\n def f(x): return {k: [v] for k, v in x}"}] * 30,
        "tools": [_TOOL] * 20,
    }
)

CASES: Cases = {
    "validate chat request (1 KB)": lambda: codec.decode_chat(REQUEST),
    "screen.check alone, UTF-8 only (1 KB)": lambda: screen.check(REQUEST),
    "validate chat request, strict (1 KB; access control on)": lambda: codec.decode_chat(REQUEST, strict=True),
    "validate chat request (18 KB prose)": lambda: codec.decode_chat(PROSE),
    "validate chat request, strict (18 KB prose)": lambda: codec.decode_chat(PROSE, strict=True),
    "validate chat request (9 KB agent, tools)": lambda: codec.decode_chat(AGENT),
    "validate chat request, strict (9 KB agent, tools)": lambda: codec.decode_chat(AGENT, strict=True),
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
