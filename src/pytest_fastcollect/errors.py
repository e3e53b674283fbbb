"""How a failure of the core is reported: always as one line, never as a traceback."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` (a pybind11 TypeError, for one, spans many lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
