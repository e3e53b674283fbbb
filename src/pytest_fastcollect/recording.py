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
- the run collected the whole file (flow.py records nothing when an argument is a node ID, or with
  `--lf`/`--sw`, which filter).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pytest

from .records import FileRecord, ItemRecord, json_scalar_kwargs


class KeywordNames:
    """The names pytest's `-k` matches for an item: `KeywordMatcher.from_item` (_pytest/mark/__init__.py):
    the names of every node of `item.listchain()` except the Session and the root Directory, the extra
    keywords of every node of the chain (`listextrakeywords`), the names in the test function's `__dict__`
    (filtered by `_is_matchable_function_attribute` where that exists: pytest >= 9.1), and the marker names.
    `fast()` computes the same set with the parent chain's part cached per parent node; `exact()` calls
    pytest's own implementation."""

    def __init__(self) -> None:
        self._chains: dict[int, set[str]] = {}
        from _pytest import mark

        self._matchable = getattr(mark, "_is_matchable_function_attribute", None)
        self._matcher = mark.KeywordMatcher

    def chain(self, node: Any) -> set[str]:
        """Names and extra keywords contributed by `node` and its parents (cached per node)."""
        if node is None:
            return set()
        cached = self._chains.get(id(node))
        if cached is None:
            cached = set(self.chain(node.parent))
            cached.update(node.extra_keyword_matches)
            root_dir = isinstance(node, pytest.Directory) and isinstance(node.parent, pytest.Session)
            if not isinstance(node, pytest.Session) and not root_dir:
                cached.add(node.name)
            self._chains[id(node)] = cached
        return cached

    def fast(self, item: pytest.Item, marks: list[Any]) -> set[str]:
        names = set(self.chain(item.parent))
        names.add(item.name)
        names.update(item.extra_keyword_matches)
        function = getattr(item, "function", None)
        if function:
            attrs = function.__dict__
            names.update(attrs if self._matchable is None else (a for a in attrs if self._matchable(a)))
        names.update(name for name, _ in marks)
        return names

    def exact(self, item: pytest.Item) -> set[str]:
        return set(getattr(self._matcher.from_item(item), "_names"))


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


class Recorder:
    """Accumulates one session's collection per test file; `finish()` turns it into records."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.deselected_items: list[pytest.Item] = []
        self.collected: list[pytest.Item] = []
        self.unknown_warnings = False

    def module_collected(self, path: str, failed: bool, warnings_delta: int | None) -> None:
        entry = self.files.setdefault(path, _File())
        entry.failed = entry.failed or failed
        if warnings_delta is None:
            self.unknown_warnings = True
        else:
            entry.warnings += warnings_delta

    def item_collected(self, item: pytest.Item) -> None:
        """Every collected item, in collection order (grouped per file only when needed: nodeids())."""
        self.collected.append(item)

    def nodeids(self, paths: set[str]) -> dict[str, list[str]]:
        """path -> node IDs collected from it, in collection order, for the test files in `paths`. An item
        counts for the file of its Module (an item of another collector type for the same path counts too,
        and then the file's record can never match: it is not recorded)."""
        out: dict[str, list[str]] = {p: [] for p in paths}
        # the items of one file share their parent's Path object: turn each one into a str once
        by_path_object: dict[int, list[str] | None] = {}
        for item in self.collected:
            key = id(item.path)
            if key in by_path_object:
                ids = by_path_object[key]
            else:
                ids = by_path_object[key] = out.get(str(item.path))
            if ids is not None:
                ids.append(item.nodeid)
        return out

    def deselected(self, items: list[pytest.Item]) -> None:
        self.deselected_items.extend(items)

    def finish(self, items: list[pytest.Item], skip: set[str]) -> tuple[list[FileRecord], list[str]]:
        """(records to write, paths whose old record must go). `items`: the session's items after the hooks
        (deselected ones were reported to deselected()); `skip`: files not to record (already valid, or
        not imported in this run)."""
        if self.unknown_warnings:
            return [], []
        names_of = KeywordNames()
        wanted = {path for path in self.files if path not in skip}
        if not wanted:
            return [], []
        collected = self.nodeids(wanted)
        by_path: dict[str, list[pytest.Item]] = {}
        for item in [*items, *self.deselected_items]:
            path = str(item.path)  # the file of its Module: cheaper than getparent(), checked below
            if path in wanted:
                module = item.getparent(pytest.Module)
                if module is not None and str(module.path) == path:
                    by_path.setdefault(path, []).append(item)
        out: list[FileRecord] = []
        forget: list[str] = []
        for path, entry in self.files.items():
            if path in skip:
                continue
            survivors = by_path.get(path, [])
            ok = (
                not entry.failed
                and entry.warnings == 0
                and len(set(collected[path])) == len(collected[path])
                and sorted(i.nodeid for i in survivors) == sorted(collected[path])
            )
            if not ok:
                forget.append(path)
                continue
            order = {nodeid: n for n, nodeid in enumerate(collected[path])}
            survivors.sort(key=lambda i: order[i.nodeid])
            common: set[str] = set()
            item_records = []
            use_exact = False
            for n, item in enumerate(survivors):
                marks = [(m.name, json_scalar_kwargs(m.kwargs) if m.kwargs else {}) for m in item.iter_markers()]
                if n == 0:
                    # the fast path is checked against pytest's own KeywordMatcher on each file's first item
                    use_exact = names_of.fast(item, marks) != names_of.exact(item)
                    common = names_of.chain(item.getparent(pytest.Module))
                names = names_of.exact(item) if use_exact else names_of.fast(item, marks)
                item_records.append(ItemRecord(item.nodeid, sorted(names - common), marks))
            out.append(FileRecord(path, sorted(common), item_records))
        return out, forget
