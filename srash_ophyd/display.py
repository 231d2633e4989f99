"""Text for terminals: metadata values printed in tables cannot inject lines or escapes.

Metadata comes from whoever wrote the run (a sample id typed by a user, a server's catalog):
a newline would print a fake table row, an ESC sequence would drive the terminal. Table
printers pass every value through :func:`escape_control`; JSON output stays exact.
"""

from __future__ import annotations

import unicodedata

__all__ = ["escape_control", "is_control"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_control(ch: str) -> bool:
    """True for a character that must not reach a terminal raw: Unicode category C* (control,
    format such as bidi overrides, surrogate, private use, unassigned) and the line and
    paragraph separators U+2028/U+2029."""
    return unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029"


def escape_control(text: object) -> str:
    """``str(text)`` with every :func:`is_control` character written as a Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``, ``\\U000e0001``); any other text is returned unchanged."""
    s = str(text)
    if not any(is_control(c) for c in s):
        return s
    out = []
    for c in s:
        if not is_control(c):
            out.append(c)
        elif c in _NAMED:
            out.append(_NAMED[c])
        else:
            n = ord(c)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000
                       else f"\\U{n:08x}")
    return "".join(out)
