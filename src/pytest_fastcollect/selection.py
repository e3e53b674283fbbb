"""Which test files a -k/-m run may leave unimported, and how pytest still counts what they hold.

Rule (issue #3, DESIGN.md "Expressions"): a file is left unimported only when it has a valid record
(validity.py) and the expressions are false for every item of that record: pytest selects an item when the
keyword expression (`-k`, KeywordMatcher semantics) and the marker expression (`-m`, MarkMatcher semantics,
_pytest/mark/__init__.py) are both true, so an item counts as selectable unless one of them is false. The
evaluation is the C++ grammar (expr/) with pytest's exact rules on the recorded names and marks; a value
the record cannot decide (a `-k` ident with arguments, a mark whose kwargs were not JSON scalars) is
unknown, and unknown means import.

A file without a valid record is always imported (and recorded by this run): the static model can say that
a file probably holds nothing selectable, but not how many items pytest would have collected from it, and
"collected N items / M deselected" must not change.

How an unimported file is still counted: pytest asks `pytest_pycollect_makemodule` for it and gets a
SkippedModule, whose collect() returns one RecordedItem per recorded node ID (nothing is imported). pytest's
collection reports count them as collected; the plugin's outermost `pytest_collection_modifyitems` wrapper
takes them out before any other implementation sees the items and reports them through `pytest_deselected`
afterwards, so the terminal's "collected N items / M deselected / K selected" is pytest's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pytest

from . import _core
from .expr import compile_expression
from .records import FileRecord


@dataclass
class Selection:
    """This run's decision. `skip`: path -> FileRecord of each file left unimported; `considered`: files
    with a valid record; `why_not`: one line when nothing can be skipped in this run (for the header)."""

    skip: dict[str, FileRecord] = field(default_factory=dict)
    considered: int = 0
    unrecorded: int = 0
    stale: dict[str, int] = field(default_factory=dict)
    why_not: str = ""
    seconds: float = 0.0

    @property
    def skipped_items(self) -> int:
        return sum(len(r.items) for r in self.skip.values())


def _keyword_matcher(names: list[str]) -> Callable[[str, dict[str, Any]], bool | None]:
    def match(ident: str, kwargs: dict[str, Any]) -> bool | None:
        if kwargs:  # pytest raises a UsageError for this: never decide it here
            return None
        return _core.keyword_matches(ident, names)

    return match


def _mark_matcher(marks: list[Any]) -> Callable[[str, dict[str, Any]], bool | None]:
    def match(ident: str, kwargs: dict[str, Any]) -> bool | None:
        unknown = False
        for name, mark_kwargs in marks:
            if name != ident:
                continue
            if not kwargs:
                return True
            if mark_kwargs is None:
                unknown = True
                continue
            if all(k in mark_kwargs and mark_kwargs[k] == v for k, v in kwargs.items()):
                return True
        return None if unknown else False

    return match


def selectable(record: FileRecord, keyword: Any, mark: Any) -> bool:
    """Whether any recorded item of the file may be selected by the compiled `keyword` / `mark` expressions
    (either may be None: not given). True also when undecidable."""
    for item in record.items:
        k = True if keyword is None else keyword.evaluate(_keyword_matcher(record.names + item.names))
        if k is False:
            continue
        m = True if mark is None else mark.evaluate(_mark_matcher(item.marks))
        if m is not False:
            return True
    return False


def expressions(options: Any) -> tuple[Any, Any, str]:
    """(keyword, mark, error): the compiled -k (after pytest's lstrip) and -m expressions, None when not
    given; `error` is set (and both None) when either does not compile (pytest reports that itself)."""
    keyword_text = str(getattr(options, "keyword", "") or "").lstrip()
    mark_text = str(getattr(options, "markexpr", "") or "")
    keyword = mark = None
    if keyword_text:
        keyword, _, message = compile_expression(keyword_text)
        if keyword is None:
            return None, None, f"-k does not compile ({message})"
    if mark_text:
        mark, _, message = compile_expression(mark_text)
        if mark is None:
            return None, None, f"-m does not compile ({message})"
    return keyword, mark, ""


def decide(valid: dict[str, FileRecord], keyword: Any, mark: Any, exclude: Iterable[str] = ()) -> dict[str, FileRecord]:
    """The files of `valid` (path -> record) that hold no selectable item, minus `exclude`."""
    excluded = set(exclude)
    return {p: r for p, r in valid.items() if p not in excluded and not selectable(r, keyword, mark)}


class RecordedItem(pytest.Item):
    """An item of a file left unimported: its node ID as recorded. It only exists to be counted as collected
    and then deselected; it is never part of the items pytest runs."""

    def runtest(self) -> None:  # pragma: no cover - taken out of the items before anything can run it
        raise RuntimeError(f"pytest-fastcollect: {self.nodeid} was not imported and cannot run")

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.nodeid


class SkippedModule(pytest.Module):
    """A test file left unimported: collects the RecordedItems of its record. If a `pytest_itemcollected`
    implementation other than pytest's own would see those items (it might read `item.obj`), it collects
    the real module instead (exactly what pytest would have done)."""

    fastcollect_record: FileRecord

    def collect(self) -> list[pytest.Item | pytest.Collector]:  # type: ignore[override]
        if _foreign_itemcollected(self):
            return list(super().collect())
        out: list[pytest.Item | pytest.Collector] = []
        for item in self.fastcollect_record.items:
            name = item.nodeid.rsplit("::", 1)[-1]
            out.append(RecordedItem.from_parent(self, name=name, nodeid=item.nodeid))
        return out


def _foreign_itemcollected(node: pytest.Collector) -> bool:
    for impl in node.ihook.pytest_itemcollected.get_hookimpls():
        module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
        if not str(module).startswith(("_pytest.", "pytest_fastcollect")):
            return True
    return False
