"""relay.native's watch over a Responses event stream: regions without the terminal event
pass through as they came, and the error event written for a cut stream takes the next
sequence_number after the last event relayed, however the events were grouped."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from gateway.errors import UpstreamProtocolError
from gateway.relay.native import _Watch


def delta(n: int) -> bytes:
    data = {"type": "response.output_text.delta", "sequence_number": n, "delta": " word", "item_id": "msg_1"}
    return b"event: response.output_text.delta\ndata: " + json.dumps(data).encode() + b"\n\n"


def watch() -> _Watch:
    # Neither is touched before a terminal event.
    return _Watch(cast(Any, None), cast(Any, None), b"")


@pytest.mark.parametrize("group", [1, 2, 5])
def test_native_watch_passes_regions_and_numbers_its_error_event(group: int) -> None:
    w = watch()
    events = [delta(n) for n in range(7)]
    for i in range(0, len(events), group):
        region = b"".join(events[i : i + group])
        assert w.region(region) == region
    frame = w.error_event(UpstreamProtocolError("cut"))
    body = json.loads(frame.split(b"data: ", 1)[1])
    assert frame.startswith(b"event: error\n") and body["sequence_number"] == 7 and body["type"] == "error"


def test_native_watch_error_event_before_any_event_is_numbered_zero() -> None:
    body = json.loads(watch().error_event(UpstreamProtocolError("cut")).split(b"data: ", 1)[1])
    assert body["sequence_number"] == 0


def test_native_watch_a_delta_quoting_the_terminal_type_is_not_terminal() -> None:
    w = watch()
    data = {"type": "response.output_text.delta", "sequence_number": 3, "delta": '"response.completed" {"response":1}'}
    region = b"data: " + json.dumps(data).encode() + b"\n\n"
    assert w.region(region) == region and not w.done
