"""Incremental SSE framing: bytes in, complete frames out.

``Framer.feed`` returns the contiguous run of *complete* frames in what has arrived so
far (one slice: no object per frame) and keeps only the trailing partial frame. A frame
may arrive split at any byte; several may arrive in one read. The relay forwards what
``feed`` returns, so a client never sees half a frame and the gateway can look at frame
boundaries without decoding anything.

Line endings: ``\\n`` as every OpenAI-compatible server sends. ``\\r\\n`` streams are
normalised to ``\\n`` (SSE treats them alike); lone ``\\r`` line endings are not supported.
"""

from __future__ import annotations

from gateway.errors import UpstreamProtocolError

# One SSE frame larger than this is not a completion chunk: a broken or hostile
# upstream. Bounds the memory a stream can hold between reads.
MAX_FRAME_BYTES = 1024 * 1024

_SEP = b"\n\n"
_CRLF_SEP = b"\r\n\r\n"


class Framer:
    __slots__ = ("_crlf", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._crlf = False

    def feed(self, data: bytes) -> bytes:
        """The complete frames (each ending in a blank line) now available."""
        if not self._pending:  # the common read: whole frames, nothing held over
            if not self._crlf:
                if data.endswith(_SEP):
                    return data
            elif data.endswith(_CRLF_SEP):
                return data.replace(b"\r\n", b"\n")
        buf = self._pending + data if self._pending else data
        if self._crlf:
            # A trailing "\r" may be the first half of "\r\n": keep it for the next read.
            cut = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
            buf, tail = buf[:cut].replace(b"\r\n", b"\n"), buf[cut:]
        else:
            tail = b""
        end = buf.rfind(_SEP)
        if end < 0 and not self._crlf and b"\r" in buf:
            # No "\n\n" yet but a "\r": a CRLF stream (JSON never holds a raw "\r").
            # Checked only here, so LF streams never pay for the scan.
            self._crlf = True
            self._pending = b""
            return self.feed(buf)
        if end < 0:
            self._pending = buf + tail
            if len(self._pending) > MAX_FRAME_BYTES:
                raise UpstreamProtocolError(f"upstream sent an SSE frame over {MAX_FRAME_BYTES} bytes")
            return b""
        end += 2
        self._pending = buf[end:] + tail
        if len(self._pending) > MAX_FRAME_BYTES:
            raise UpstreamProtocolError(f"upstream sent an SSE frame over {MAX_FRAME_BYTES} bytes")
        return buf[:end]

    @property
    def pending(self) -> bytes:
        """The partial frame held back (empty at a clean end of stream)."""
        return self._pending


def split(region: bytes) -> list[bytes]:
    """The frames of a region ``feed`` returned, each with its blank line."""
    return [f + _SEP for f in region.split(_SEP)[:-1]]


def data_of(frame: bytes) -> bytes | None:
    """The payload of a single-line ``data:`` frame, without the field name, the
    optional space and the blank line; None for a comment, event or id frame."""
    if not frame.startswith(b"data:"):
        return None
    payload = frame[5:-2]
    return payload[1:] if payload.startswith(b" ") else payload
