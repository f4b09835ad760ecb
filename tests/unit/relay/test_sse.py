"""gateway.relay.sse: incremental framing of an SSE byte stream, however it is split."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import UpstreamProtocolError
from gateway.relay import sse
from gateway.relay.sse import MAX_FRAME_BYTES, Framer

DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"

# A payload is one line: no "\n", and no "\r" (lone CR line endings are unsupported).
_json_payload = st.text(max_size=30).map(lambda s: json.dumps({"content": s}).encode())
_byte_payload = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
_data_frame = st.one_of(_json_payload, _byte_payload).map(lambda p: b"data: " + p + b"\n\n")
frame_lists = st.lists(st.one_of(_data_frame, st.just(PING), st.just(DONE)), max_size=12)
cut_points = st.integers(min_value=0, max_value=1 << 20)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets, taken modulo its length (repeated offsets
    give empty chunks)."""
    bounds = sorted(p % (len(data) + 1) for p in points)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


def feed_all(chunks: list[bytes]) -> tuple[list[bytes], Framer]:
    framer = Framer()
    return [framer.feed(c) for c in chunks], framer


def crlf(frame: bytes) -> bytes:
    return frame.replace(b"\n", b"\r\n")


# --- Framer: "\n" streams --------------------------------------------------------------


@given(frames=frame_lists, points=st.lists(cut_points, max_size=25))
def test_framer_any_split_yields_the_original_frames(frames: list[bytes], points: list[int]) -> None:
    data = b"".join(frames)
    regions, framer = feed_all(cut(data, points))
    assert b"".join(regions) == data
    for region in regions:
        assert region == b"" or region.endswith(b"\n\n")
        # A region is a run of whole frames: it never ends inside one.
        assert b"".join(sse.split(region)) == region
    assert sse.split(b"".join(regions)) == frames
    assert framer.pending == b""


@given(frames=frame_lists)
def test_framer_one_byte_at_a_time(frames: list[bytes]) -> None:
    data = b"".join(frames)
    regions, framer = feed_all([data[i : i + 1] for i in range(len(data))])
    assert b"".join(regions) == data
    # Every frame is released by the read that completes it, alone.
    assert [r for r in regions if r] == frames
    assert framer.pending == b""


def test_framer_keeps_partial_frame_pending() -> None:
    framer = Framer()
    assert framer.feed(b'data: {"a":1}\n\ndata: {"b"') == b'data: {"a":1}\n\n'
    assert framer.pending == b'data: {"b"'
    assert framer.feed(b":2}\n") == b""
    assert framer.pending == b'data: {"b":2}\n'
    assert framer.feed(b"\n") == b'data: {"b":2}\n\n'
    assert framer.pending == b""


def test_framer_returns_several_frames_as_one_region() -> None:
    data = b"data: a\n\n: ping\n\ndata: b\n\n"
    assert Framer().feed(data) == data


# --- Framer: "\r\n" streams ------------------------------------------------------------


@given(frames=frame_lists, points=st.lists(cut_points, max_size=25))
def test_framer_crlf_any_split_is_normalised(frames: list[bytes], points: list[int]) -> None:
    data = b"".join(crlf(f) for f in frames)
    regions, framer = feed_all(cut(data, points))
    out = b"".join(regions)
    assert out == data.replace(b"\r\n", b"\n")
    assert b"\r" not in out
    for region in regions:
        assert region == b"" or region.endswith(b"\n\n")
    assert sse.split(out) == frames
    assert framer.pending == b""


@given(frames=frame_lists.filter(bool))
def test_framer_crlf_one_byte_at_a_time(frames: list[bytes]) -> None:
    data = b"".join(crlf(f) for f in frames)
    regions, framer = feed_all([data[i : i + 1] for i in range(len(data))])
    assert [r for r in regions if r] == frames
    assert framer.pending == b""


@pytest.mark.parametrize("at", range(1, len(b"data: x\r\n\r\n")))
def test_framer_crlf_split_anywhere_in_one_frame(at: int) -> None:
    data = b"data: x\r\n\r\ndata: y\r\n\r\n"
    framer = Framer()
    out = framer.feed(data[:at]) + framer.feed(data[at:])
    assert out == b"data: x\n\ndata: y\n\n"
    assert framer.pending == b""


def test_framer_crlf_split_between_cr_and_lf_of_the_separator() -> None:
    framer = Framer()
    assert framer.feed(b"data: x\r\n\r") == b""
    assert framer.feed(b"\ndata: y\r") == b"data: x\n\n"
    assert framer.feed(b"\n\r\n") == b"data: y\n\n"
    assert framer.pending == b""


def test_framer_crlf_mode_starts_with_the_first_cr() -> None:
    framer = Framer()
    assert framer.feed(b"data: a\n\n") == b"data: a\n\n"
    assert framer.feed(b"data: b\r\n\r\ndata: c\r") == b"data: b\n\n"
    assert framer.feed(b"\n\r\n") == b"data: c\n\n"


# --- Framer: the frame size bound ------------------------------------------------------


def test_framer_rejects_frame_over_max_without_separator() -> None:
    with pytest.raises(UpstreamProtocolError):
        Framer().feed(b"data: " + b"x" * MAX_FRAME_BYTES)


def test_framer_rejects_frame_over_max_fed_in_chunks() -> None:
    framer = Framer()
    chunk = b"x" * 65536
    assert framer.feed(b"data: ") == b""
    with pytest.raises(UpstreamProtocolError):
        for _ in range(MAX_FRAME_BYTES // len(chunk) + 1):
            assert framer.feed(chunk) == b""


def test_framer_frame_size_bound_is_exact() -> None:
    framer = Framer()
    assert framer.feed(b"x" * MAX_FRAME_BYTES) == b""  # exactly at the bound: still held
    with pytest.raises(UpstreamProtocolError):
        framer.feed(b"x")


def test_framer_rejects_oversized_crlf_frame() -> None:
    framer = Framer()
    assert framer.feed(b"data: a\r\n\r\n") == b"data: a\n\n"
    with pytest.raises(UpstreamProtocolError):
        framer.feed(b"data: " + b"y" * MAX_FRAME_BYTES + b"\r")


# --- split and data_of -----------------------------------------------------------------


def test_split_frames_of_a_region() -> None:
    assert sse.split(b"") == []
    assert sse.split(b"data: a\n\n: c\n\ndata: [DONE]\n\n") == [b"data: a\n\n", b": c\n\n", b"data: [DONE]\n\n"]


@pytest.mark.parametrize(
    ("frame", "payload"),
    [
        (b"data: x\n\n", b"x"),
        (b"data:x\n\n", b"x"),
        (b"data:  x\n\n", b" x"),  # only one optional space is the separator
        (b'data: {"a": 1}\n\n', b'{"a": 1}'),
        (b"data: [DONE]\n\n", b"[DONE]"),
        (b"data:\n\n", b""),
        (b": c\n\n", None),
        (b"event: error\n\n", None),
        (b"id: 7\n\n", None),
    ],
)
def test_data_of_payload(frame: bytes, payload: bytes | None) -> None:
    assert sse.data_of(frame) == payload
