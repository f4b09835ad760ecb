"""gateway.logline: one record, one line, whatever its message holds."""

from __future__ import annotations

import logging
import sys

from gateway.logline import LineFormatter, escape

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\r\n2030-01-01 ERROR forged")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_logline_escapes_control_characters_in_the_message() -> None:
    line = LineFormatter(FORMAT).format(_record("model '%s' unpriced", "x\r\nFORGED\x1b[31m\u2028\x85\t"))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert line.endswith("model 'x\\r\\nFORGED\\x1b[31m\\u2028\\x85\\t' unpriced")


def test_logline_traceback_lines_are_indented() -> None:
    text = LineFormatter(FORMAT).format(_record("failed: %s", "a\nb", exc=True))
    first, *rest = text.split("\n")
    assert first.endswith("failed: a\\nb")
    assert rest and all(line.startswith("    ") for line in rest)
    assert "\r" not in text and any("forged" in line for line in rest)


def test_logline_escape_leaves_plain_text_alone() -> None:
    s = "plain text, 'quoted' and unicode é"
    assert escape(s) is s
