"""Data-derived text made safe to print on a terminal or write in a log line.

Service, span and operation names, topic keys and database errors come from
whoever can write to the input topic. Printed raw, their control characters
drive the terminal (ESC sequences move the cursor, recolour, retitle the window,
clear lines) and a newline forges a whole line of output; bidi controls reorder
what is shown. :func:`printable` is the one place that neutralises them; CLI
output that shows data goes through it, and :func:`install_log_escaping` passes
every log message through it.

Escaped, as a visible ``\\uXXXX`` (also a valid JSON escape, so JSON lines stay
JSON): C0 controls (tab and newline included: one record, one line), DEL, C1
controls, the bidi embeddings, overrides, isolates and marks, and the Unicode
line and paragraph separators. Everything else, non-ASCII letters included, is
kept. A backslash is not doubled: text that merely looks like an escape is
harmless to show.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\uXXXX`` (see the module doc).

    >>> print(printable("shop\\x1b[2K\\rCRITICAL all good\\x1b]0;pwned\\x07"))
    shop\\u001b[2K\\u000dCRITICAL all good\\u001b]0;pwned\\u0007
    >>> print(printable("a\\nb\\tc\\x7fd\\x9be"))
    a\\u000ab\\u0009c\\u007fd\\u009be
    >>> print(printable("evil\\u202etxt.exe"))
    evil\\u202etxt.exe
    >>> printable("café /users/{id}") == "café /users/{id}"
    True
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


class _EscapedRecord(logging.LogRecord):
    """A log record whose message (format and arguments, merged) is :func:`printable`."""

    def getMessage(self) -> str:
        return printable(super().getMessage())


def install_log_escaping() -> None:
    """Make every log record of this process escape its message (idempotent).

    At the record, not a handler: Faust and other libraries install handlers of
    their own, and every one of them formats through ``getMessage``. Tracebacks
    are formatted apart and keep their lines.
    """
    factory: Any = logging.getLogRecordFactory()
    if factory is logging.LogRecord:
        logging.setLogRecordFactory(_EscapedRecord)
