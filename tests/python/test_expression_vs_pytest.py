"""The C++ -k/-m grammar against pytest's own Expression, on the installed pytest (8.x and 9.x in CI):
same accept/reject, same error column and message, same truth value (two-valued matchers)."""

from __future__ import annotations

import random

import pytest
from _pytest.mark.expression import Expression

try:  # pytest 8.x
    from _pytest.mark.expression import ParseError
except ImportError:  # pytest 9.x raises SyntaxError(message, (file, 1, column, input))
    ParseError = None  # type: ignore[assignment,misc]

from pytest_fastcollect import _core
from pytest_fastcollect.expr import compile_expression

ATOMS = ["a", "b", "c", "test_x", "x.y", "x[1]", "a-b", "a/b", "a:b", "a+b", "a\\\\b", "notx", "orb", "andy",
         "True", "None", "m(k=1)", "m(k='s')", "m(k=\"s\", j=True)", "m(k=None)", "m(k=-3)", "m(k=)", "m(=1)",
         "m(k=1,)", "m(k=1, k=2)", "m()", "m(k=x)", "m(k='a\\\\b')"]
GLUE = [" and ", " or ", " not ", "not ", "(", ")", " ", "", "  ", "\t", "$", "and", "or"]

CASES = [
    "", " ", "a", "not a", "a and b", "a or b and c", "not a and b", "(a or b) and c", "not not a", "a and",
    "(a", "a)", "a b", "and", "or a", "not", "()", "a and (b or (c and not a))", "m(k=1)", "m(k='x') and a",
    "m(k=1, j=2)", "m(k=1,j=2)", "a\\b", "a\\b and m(k='x')", "m(k=1.5)", "m(k=+1)", "m(True=1)", "m(k=True)",
    "x[1]", "a:b", "a/b", "a+b", "-a", "a.b.c", "é", "test_é or b",
]


def _random_cases(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(ATOMS if rng.random() < 0.6 else GLUE) for _ in range(rng.randint(1, 7))]
        out.append("".join(parts))
    return out


def _pytest_result(text: str, truth: dict[str, bool]):
    try:
        expr = Expression.compile(text)
    except SyntaxError as exc:  # pytest 9, and Python's compiler (e.g. a repeated keyword argument)
        return ("error", exc.offset or 1, exc.msg)
    except Exception as exc:  # noqa: BLE001
        if ParseError is not None and isinstance(exc, ParseError):
            return ("error", exc.column, exc.message)
        return ("pytest-crash", type(exc).__name__)

    def matcher(name: str, /, **kwargs: object) -> bool:
        return truth.get(name, False) ^ bool(kwargs)

    try:
        return ("ok", expr.evaluate(matcher))
    except Exception as exc:  # noqa: BLE001 - pytest itself fails (ValueError, TypeError): not comparable
        return ("pytest-crash", type(exc).__name__)


def _ours(text: str, truth: dict[str, bool]):
    expr, column, message = compile_expression(text)
    if expr is None:
        return ("error", column, message)
    return ("ok", expr.evaluate(lambda name, kwargs: truth.get(name, False) ^ bool(kwargs)))


TRUTHS = [{}, {"a": True}, {"a": True, "b": True}, {"b": True, "c": True, "m": True}, {"c": True, "x.y": True}]


@pytest.mark.parametrize("text", CASES + _random_cases(1500, 20261121))
def test_same_as_pytest(text: str) -> None:
    for truth in TRUTHS:
        theirs = _pytest_result(text, truth)
        if theirs[0] == "pytest-crash":
            pytest.skip(f"pytest itself raises {theirs[1]} on {text!r}")
        assert _ours(text, truth) == theirs, (text, truth)


def test_unknown_is_kept_only_where_it_matters() -> None:
    expr, _, _ = _core.compile_expression("a or b")
    assert expr.evaluate(lambda n, k: {"a": True}.get(n)) is True  # True or unknown = True
    assert expr.evaluate(lambda n, k: {"a": False}.get(n)) is None  # False or unknown = unknown
    expr, _, _ = _core.compile_expression("not a and b")
    assert expr.evaluate(lambda n, k: {"a": True}.get(n)) is False  # not True and unknown = False


def test_keyword_matches_is_case_insensitive_substring() -> None:
    assert _core.keyword_matches("TEST_X", ["my_test_x_case"])
    assert not _core.keyword_matches("q", ["my_test_x_case"])
