"""Writing records (records.py) from the collection pytest really did in this run.

Fed by the plugin's hooks: `module_collected()` around the collection of each collector of a test file
(outcome, warnings raised meanwhile), `item_collected()` for each item, `deselected()` for items removed by
-k/-m/--deselect, and `finish()` after every `pytest_collection_modifyitems` implementation has run. A file
is recorded only when its record would be exact:
- every collector of the file passed (a collection error or a module-level skip is always re-imported, so
  pytest reports it);
- its collection raised no warning (a skipped import would lose it from the warnings summary); when the
  warnings pytest records cannot be counted (an unknown warnings implementation) nothing is recorded;
- every item collected from it is still there after the hooks, in `items` or deselected (a conftest that
  drops items silently makes the file unrecordable);
- the run collected the whole file (not a `file.py::name` argument, not `--lf`/`--sw`, which filter).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import pytest

from .records import FileRecord, ItemRecord, json_scalar_kwargs


def warnings_seen() -> int | None:
    """How many warnings the innermost `warnings.catch_warnings(record=True)` holds (pytest's, during
    collection: _pytest/warnings.py catch_warnings_for_item), or None when that cannot be known."""
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    log = getattr(impl, "__self__", None)
    return len(log) if isinstance(log, list) else None


@dataclass
class _File:
    failed: bool = False
    warnings: int = 0
    nodeids: list[str] = field(default_factory=list)


class Recorder:
    """Accumulates one session's collection per test file; `finish()` turns it into records."""

    def __init__(self, partial_paths: Iterable[str] = ()) -> None:
        #: files named with `::` on the command line: only partly collected
        self.partial = set(partial_paths)
        self.files: dict[str, _File] = {}
        self.deselected_items: list[pytest.Item] = []
        self.unknown_warnings = False
        self.seconds = 0.0

    def module_collected(self, path: str, failed: bool, warnings_delta: int | None) -> None:
        entry = self.files.setdefault(path, _File())
        entry.failed = entry.failed or failed
        if warnings_delta is None:
            self.unknown_warnings = True
        else:
            entry.warnings += warnings_delta

    def item_collected(self, path: str, nodeid: str) -> None:
        self.files.setdefault(path, _File()).nodeids.append(nodeid)

    def deselected(self, items: list[pytest.Item]) -> None:
        self.deselected_items.extend(items)

    def finish(self, items: list[pytest.Item], skip: set[str]) -> tuple[list[FileRecord], list[str]]:
        """(records to write, paths whose old record must go). `items`: the session's items after the hooks
        (deselected ones were reported to deselected()); `skip`: files not to record (already valid, or
        not imported in this run)."""
        t0 = time.perf_counter()
        if self.unknown_warnings:
            return [], []
        from _pytest.mark import KeywordMatcher

        by_path: dict[str, list[pytest.Item]] = {}
        for item in [*items, *self.deselected_items]:
            module = item.getparent(pytest.Module)
            if module is not None:
                by_path.setdefault(str(module.path), []).append(item)
        out: list[FileRecord] = []
        forget: list[str] = []
        for path, entry in self.files.items():
            if path in skip:
                continue
            survivors = by_path.get(path, [])
            ok = (
                not entry.failed
                and entry.warnings == 0
                and path not in self.partial
                and len(set(entry.nodeids)) == len(entry.nodeids)
                and sorted(i.nodeid for i in survivors) == sorted(entry.nodeids)
            )
            if not ok:
                forget.append(path)
                continue
            order = {nodeid: n for n, nodeid in enumerate(entry.nodeids)}
            survivors.sort(key=lambda i: order[i.nodeid])
            common: set[str] | None = None
            item_records = []
            for item in survivors:
                names = set(getattr(KeywordMatcher.from_item(item), "_names"))
                marks = [(m.name, json_scalar_kwargs(m.kwargs)) for m in item.iter_markers()]
                item_records.append((item.nodeid, names, marks))
                common = names if common is None else common & names
            common = common or set()
            out.append(
                FileRecord(
                    path,
                    sorted(common),
                    [ItemRecord(n, sorted(names - common), marks) for n, names, marks in item_records],
                )
            )
        self.seconds += time.perf_counter() - t0
        return out, forget
