"""The process's log lines: one record, one line.

Log messages quote what clients send (model names, paths, header values) and what
upstreams answer. A CR or LF among them would start a line that reads as a record of
its own, an ANSI escape would rewrite the terminal showing it. So every record's message
is written with its control characters escaped (``\\n``, ``\\r``, ``\\x1b``, ``\\u2028``,
...), and the lines of a traceback after the record's first are indented: a line that
starts at the margin is always a record the gateway wrote. Installed for every logger
of the process, aiohttp's included, by ``configure``.

The JSON access log (``server.access``) is encoded by msgspec, which escapes control
characters in strings itself. With the JSON format (``--log-format json``, the default
when stdout is not a terminal) the process's own records are JSON objects too, one per
line, on stdout beside the access log: one stream for a log pipeline to parse.
"""

from __future__ import annotations

import logging
import os
import re
import sys

import msgspec

FORMATS = ("text", "json")
FORMAT_ENV = "GATEWAY_LOG_FORMAT"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Tracebacks keep their line breaks (indented), not their other controls.
_CONTROL_BUT_LF = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INDENT = "\n    "


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    return _SHORT.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape(text: str) -> str:
    """``text`` with its control characters written as escapes."""
    return _CONTROL.sub(_escape_char, text) if _CONTROL.search(text) else text


class LineFormatter(logging.Formatter):
    """``logging.Formatter`` whose records each take one line (tracebacks indented)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if extra:
                s += _INDENT + _CONTROL_BUT_LF.sub(_escape_char, extra).replace("\n", _INDENT)
        return s


class Record(msgspec.Struct, omit_defaults=True):
    """One record as a JSON line; keys as the access log's where they mean the same."""

    ts: float
    level: str
    logger: str
    message: str
    process: str | None = None  # "supervisor 4711", "worker 4712"
    exception: str | None = None  # the traceback, as one string


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object (msgspec escapes every control character)."""

    def __init__(self, who: str | None) -> None:
        super().__init__()
        self._who = who
        self._encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        exc = None
        if record.exc_info:
            exc = record.exc_text or self.formatException(record.exc_info)
        elif record.stack_info:
            exc = self.formatStack(record.stack_info)
        line = Record(
            int(record.created * 1000) / 1000,
            record.levelname,
            record.name,
            record.getMessage(),
            self._who,
            exc,
        )
        return self._encode(line).decode()


class FdHandler(logging.Handler):
    """Writes each formatted record with one ``os.write`` to a descriptor: the access
    log's writer thread writes whole batches to the same one, so lines never interleave
    within a line."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            view = memoryview((self.format(record) + "\n").encode())
            while view:
                view = view[os.write(self._fd, view) :]
        except Exception:
            self.handleError(record)


def resolve_format(given: str | None) -> str:
    """``--log-format``, else GATEWAY_LOG_FORMAT, else json when stdout is not a terminal
    (a container, a service manager, a pipe) and text when it is."""
    fmt = given or os.environ.get(FORMAT_ENV) or ("text" if os.isatty(1) else "json")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def configure(level: str, *, who: str | None = None, fmt: str = "text") -> None:
    """The root logger's one handler: text lines on stderr through a ``LineFormatter``, or
    JSON lines on stdout (``fmt="json"``); ``who`` names the process (a supervisor or a
    worker) in every line, replacing an earlier set-up."""
    handler: logging.Handler
    if fmt == "json":
        handler = FdHandler(1)
        handler.setFormatter(JsonFormatter(who))
    else:
        where = f" [{who}]" if who else ""
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LineFormatter(f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
