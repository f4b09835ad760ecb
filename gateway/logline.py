"""The process's log lines: one record, one line.

Log messages quote what clients send (model names, paths, header values) and what
upstreams answer. A CR or LF among them would start a line that reads as a record of
its own, an ANSI escape would rewrite the terminal showing it. So every record's message
is written with its control characters escaped (``\\n``, ``\\r``, ``\\x1b``, ``\\u2028``,
...), and the lines of a traceback after the record's first are indented: a line that
starts at the margin is always a record the gateway wrote. Installed for every logger
of the process, aiohttp's included, by ``configure``.

The JSON access log (``server.access``) is encoded by msgspec, which escapes control
characters in strings itself.
"""

from __future__ import annotations

import logging
import re
import sys

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


def configure(level: str, *, who: str | None = None) -> None:
    """The root logger writes to stderr through a ``LineFormatter``; ``who`` names the
    process (a supervisor or a worker) in every line, replacing an earlier set-up."""
    where = f" [{who}]" if who else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter(f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=who is not None)
