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

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

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
        k = True if keyword is None else keyword.evaluate_keywords(record.names + item.names)
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


def query_key(options: Any) -> str:
    """The key under which per-file decisions for this run's -k/-m are stored (records.RecordStore
    .decisions): the expression texts as pytest reads them, and the plugin version (the evaluator's rules)."""
    from . import __version__

    keyword_text = str(getattr(options, "keyword", "") or "").lstrip()
    mark_text = str(getattr(options, "markexpr", "") or "")
    return json.dumps([__version__, keyword_text, mark_text])


def decide(
    valid: dict[str, FileRecord],
    keyword: Any,
    mark: Any,
    exclude: Iterable[str] = (),
    known: Mapping[str, tuple[str, bool]] | None = None,
    learnt: list[tuple[str, str, bool]] | None = None,
    broken: list[str] | None = None,
) -> dict[str, FileRecord]:
    """The files of `valid` (path -> record) that hold no selectable item, minus `exclude`. `known`: path ->
    (record digest, selectable) decided earlier for the same expressions (used when the digest is the
    record's); every evaluation done here is appended to `learnt` as (path, digest, selectable); the path of a
    record that does not decode to `broken` (that file is imported)."""
    excluded = set(exclude)
    known = known or {}
    out: dict[str, FileRecord] = {}
    for path, record in valid.items():
        if path in excluded:
            continue
        earlier = known.get(path)
        try:
            if earlier is not None and record.digest and earlier[0] == record.digest:
                can_select = earlier[1]
            else:
                can_select = selectable(record, keyword, mark)
                if learnt is not None and record.digest:
                    learnt.append((path, record.digest, can_select))
            if not can_select:
                record.items  # decode now, so that a record that does not decode is imported
                out[path] = record
        except (ValueError, KeyError, TypeError, IndexError):
            if broken is not None:
                broken.append(path)
    return out


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
        if foreign_itemcollected(self.ihook.pytest_itemcollected) is not None:  # (a conftest below rootdir)
            return list(super().collect())
        out: list[pytest.Item | pytest.Collector] = []
        for item in self.fastcollect_record.items:
            name = item.nodeid.rsplit("::", 1)[-1]
            out.append(RecordedItem.from_parent(self, name=name, nodeid=item.nodeid))
        return out


def foreign_itemcollected(hook: Any) -> str | None:
    """The name of a plugin or conftest, other than pytest's own and ours, implementing
    pytest_itemcollected in `hook` (config.hook or a node's ihook), or None. Such an implementation would
    see the stand-in items of a file left unimported (it may read `item.obj`: pytest-django does), so the
    file is imported instead: in prepare() for every file, in SkippedModule.collect for a conftest loaded
    during collection."""
    for impl in hook.get_hookimpls():
        module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
        if not str(module).startswith(("_pytest.", "pytest_fastcollect")):
            return str(impl.plugin_name or module)
    return None
