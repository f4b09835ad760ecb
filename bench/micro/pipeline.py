"""One non-streaming request through every in-process step the gateway takes, without
sockets: validate, route, build the upstream body, read the answer's head, price its
usage, splice usage.cost and extra_fields, record the metrics."""

from __future__ import annotations

import time

from bench.micro import Cases, main_for
from bench.micro.fixtures import LEDGER, REQUEST, RESPONSE, TABLE
from gateway import codec
from gateway.relay.call import Call
from gateway.relay.unary import account


def pipeline() -> bytes:
    t0 = time.perf_counter()
    req = codec.decode_chat(REQUEST)
    target = TABLE.resolve(req.model)
    body = codec.upstream_body(REQUEST, model=target.model, rewrite_model=target.rewrite, has_gateway_fields=False)
    call = Call(
        endpoint="chat",
        request_type="chat_completion",
        requested=req.model,
        targets=[(target, body)],
        body=REQUEST,
        t0=t0,
        client_usage=False,
        ledger=LEDGER,
    )
    head = codec.response_head(RESPONSE)
    data, estimated = account(call, target, RESPONSE, bytes(head.usage))  # type: ignore[arg-type]
    return codec.enrich(data, head, call.extra_fields(target, estimated=estimated))


CASES: Cases = {"whole in-process pipeline (1 KB in, 600 B out)": pipeline}

if __name__ == "__main__":
    main_for("pipeline: one non-streaming request, in-process", CASES)
