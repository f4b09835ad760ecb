"""Request side of gateway/codec.py: validation (the typed head decode) and the
upstream body (model swap, gateway fields, forced stream usage)."""

from __future__ import annotations

import msgspec

from bench.micro import Cases, main_for
from bench.micro.fixtures import BARE, REQUEST
from gateway import codec, screen

# Beside the 1 KB request: 18 KB of prose (few brackets) and a 9 KB agent request (tool
# schemas: over 128 brackets, so the nesting check takes its exact scan).
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
    "  of which screen.check (1 KB)": lambda: screen.check(REQUEST, codec.CHAT_KEYS),
    "validate chat request (18 KB prose)": lambda: codec.decode_chat(PROSE),
    "  of which screen.check (18 KB prose)": lambda: screen.check(PROSE, codec.CHAT_KEYS),
    "validate chat request (9 KB agent, tools)": lambda: codec.decode_chat(AGENT),
    "  of which screen.check (9 KB agent, tools)": lambda: screen.check(AGENT, codec.CHAT_KEYS),
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
