"""-k/-m expressions through the C++ grammar, in the dialect of the installed pytest."""

from __future__ import annotations

import functools
from typing import Any

from . import _core


@functools.lru_cache(maxsize=1)
def backslash_anywhere() -> bool:
    """Whether the installed pytest rejects a string literal when a backslash appears anywhere in the
    expression (pytest <= 9.0) rather than only inside the literal (9.1+). Probed on pytest itself, once."""
    from _pytest.mark.expression import Expression

    try:
        Expression.compile("a\\b and m(k='x')")
    except Exception:  # noqa: BLE001 - ParseError (8.x) or SyntaxError (9.x)
        return True
    return False


def compile_expression(text: str) -> tuple[Any, int, str]:
    """(Expression, 0, '') or (None, column, message), exactly as the installed pytest would report it."""
    return _core.compile_expression(text, backslash_anywhere())
