"""What a batch of saved changes means for the next run of watch mode.

Two concerns, each a rule table:

- `ignored(path)`: events nobody's tests depend on: version control, caches, build output, virtual
  environments, bytecode, editor swap and backup files (the folder and name lists below; watchfiles'
  DefaultFilter lists most of them too), and the folders given by the caller (pytest's cache_dir).
- `affected(changes, selection, project)`: which tests the next run must include. The answer is sound first:
  it may run more than the change can reach, never less. Anything the rules cannot tell about means the
  whole selection:

  | change | next run |
  |---|---|
  | a conftest, an ini or config file (CONFIG_NAMES), a deleted Python file, any file that is not Python (unless `fastcollect_watch_paths` maps it: WatchPath) | the whole selection |
  | a Python file (a test file, a helper, the code under test) | the test files of the selection that reach it (below), or nothing when none does |
  | ... but it, or a file that reaches it, is a conftest or was imported when pytest started (an entry-point plugin: in this process's sys.modules); or a plugin collects Python files itself (`--doctest-modules`, a `pytest_collect_file` hook other than pytest's) | the whole selection |

  "Reaches" is by name, not by resolution, so that a `sys.path` edit or an import mode cannot hide an edge:
  a file reaches a changed file when one of its import statements (the C++ scanner; also inside functions)
  or one of its name-like string literals (`importlib.import_module("pkg.mod")`, `pytest_plugins`,
  `__all__`, a script path: no spaces) uses one of the changed file's module names (its stem, or a dotted
  tail of its path under rootdir; a package's `__init__.py` by the package's names), and so on
  transitively. A common stem (`utils`) only makes the answer bigger; a package whose `__init__.py` imports
  its subpackages (sympy) makes every test that imports the package reach every module it holds, as it
  does at run time. Not seen: an import whose name is computed at run time
  (`importlib.import_module(f"pkg.{name}")`), and a file read as data by a path built at run time.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

#: Folder names whose contents are never a project edit.
IGNORED_DIRS = frozenset({
    "__pycache__", ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".eggs", ".idea", ".vscode", "node_modules", "htmlcov", ".cache",
})
#: Folder-name prefixes likewise: pytest's cache folder while it is created (Cache.mkdir: a temporary folder
#: renamed to .pytest_cache, _pytest/cacheprovider.py).
IGNORED_DIR_PREFIXES = ("pytest-cache-files-",)
#: File-name patterns that are never a project edit: bytecode, editor swap/backup/lock files (vim's .swp and its
#: `4913` probe, emacs' `#x#` and `.#x`, `x~`, JetBrains' safe-write temporaries), coverage data and
#: coverage.py's default report files (a run writes them: they must not start the next one).
IGNORED_NAMES = re.compile(
    r"(\.py[cod]$|\.sw[a-p]$|~$|^\.#|^#.*#$|^4913$|___jb_(old|tmp)___$|^\.coverage(\..*)?$|^\.DS_Store$"
    r"|^coverage\.(xml|json|lcov)$)"
)
#: Files that configure pytest: a change re-runs the whole selection (rootdir ini files, pytest's ini names).
CONFIG_NAMES = frozenset({"pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py"})


def ignored(path: str, extra_dirs: Iterable[str] = (), roots: Iterable[str] = ()) -> bool:
    """True for an event on `path` (absolute) that no test can depend on (see the module docstring): a name
    matching IGNORED_NAMES, a path under one of `extra_dirs`, or a folder between the watched root that holds
    it (the longest of `roots`; none given: the file system's root) and the file that is in IGNORED_DIRS,
    starts with IGNORED_DIR_PREFIXES, ends in `.egg-info` or holds `pyvenv.cfg` (a virtual environment).
    Folders above the root do not count: a project may live under `~/.cache`, `--pyargs` tests in a venv."""
    p = Path(path)
    if IGNORED_NAMES.search(p.name):
        return True
    for folder in extra_dirs:
        if path == folder or path.startswith(folder.rstrip(os.sep) + os.sep):
            return True
    holding = [r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)]
    base = Path(max(holding, key=len)) if holding else Path(p.anchor)
    parts = p.relative_to(base).parts
    # (the last part too: an event on such a folder itself, e.g. pytest renaming its new cache folder)
    if any(part in IGNORED_DIRS or part.endswith(".egg-info") or part.startswith(IGNORED_DIR_PREFIXES)
           for part in parts):
        return True
    folder = base
    for part in parts[:-1]:
        folder = folder / part
        if (folder / "pyvenv.cfg").is_file():
            return True
    return False


@dataclass
class Change:
    """One file event: `kind` is "added", "modified" or "deleted" (watchfiles.Change names)."""

    kind: str
    path: str


@dataclass
class Plan:
    """The next run: `files` None means the whole selection, else the test files to run (in the
    selection's order). `reason` says why, for the status line; `changed` lists the changed paths."""

    files: list[str] | None
    reason: str
    changed: list[str] = field(default_factory=list)


def module_names(path: str, rootdir: str) -> set[str]:
    """The names a module file may be imported by: its stem, and its dotted paths relative to each of its
    parent folders up to rootdir (`tests/unit/test_x.py`: test_x, unit.test_x, tests.unit.test_x); for a
    package's `__init__.py`, the package's (the folder's) names."""
    p = Path(path)
    if p.name == "__init__.py":
        p = p.parent
    parts = [p.stem]
    names = {p.stem}
    parent = p.parent
    root = Path(rootdir)
    while parent != root and root in parent.parents:
        parts.insert(0, parent.name)
        names.add(".".join(parts))
        parent = parent.parent
    if parent == root:
        parts.insert(0, root.name)
        names.add(".".join(parts))
    return names


def import_names(infos: Iterable[object]) -> set[str]:
    """Every dotted name and every component an import statement of a module uses (the scanner's
    ImportInfo: `module`, `names`): `from a.b import c` gives a, a.b, b, c, a.b.c."""
    out: set[str] = set()
    for info in infos:
        module = str(getattr(info, "module", "") or "")
        parts = [p for p in module.split(".") if p]
        for i in range(len(parts)):
            out.add(".".join(parts[: i + 1]))
            out.add(parts[i])
        out.add(module)
        for name in getattr(info, "names", []) or []:
            out.add(str(name))
            if module:
                out.add(f"{module}.{name}")
    out.discard("")
    return out


#: A string literal that can spell a module or a file: a dotted name or a path, no spaces.
_NAME_LITERAL = re.compile(r"""(['"])([\w.\-/\\]+)\1""")
_SEPARATORS = re.compile(r"[./\\]")


def literal_names(text: str) -> set[str]:
    """The components of every string literal in `text` that looks like a module name or a path
    (`"pkg.mod"` gives pkg, mod; `"scripts/run.py"` gives scripts, run, py)."""
    out: set[str] = set()
    for match in _NAME_LITERAL.finditer(text):
        out.update(p for p in _SEPARATORS.split(match.group(2)) if p)
    return out


@dataclass
class _Entry:
    stat: tuple[int, int]
    #: names its import statements use; None: unreadable (taken to import everything)
    imports: set[str] | None
    #: components of its name-like string literals; None: unreadable
    literals: set[str] | None
    #: implements pytest_collect_file (a conftest that may collect any file)
    collects: bool


class ProjectScan:
    """The project's Python files, the names their import statements use (the C++ scanner) and the names
    their string literals spell, cached by stat between plans (refresh() with the files walked after each
    change), with the inverted index reach() follows. `startup_files`: module files this
    process imported before any conftest (pytest's entry-point plugins); `collects_python`: why every
    Python file may be a collected file of its own (a plugin's pytest_collect_file, --doctest-modules), or
    None."""

    def __init__(self, rootdir: str, files: list[str], startup_files: Iterable[str] = (),
                 collects_python: str | None = None) -> None:
        self.rootdir = rootdir
        self.startup_files = set(startup_files)
        self.collects_python = collects_python
        self._cache: dict[str, _Entry] = {}
        self.files: list[str] = []
        self._importers: dict[str, set[str]] = {}
        self._unreadable: set[str] = set()
        self.refresh(files)

    def refresh(self, files: list[str]) -> None:
        """Read again the files whose stat changed (and the new ones); forget the ones gone."""
        self.files = list(files)
        stale = []
        for f in self.files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            if f not in self._cache or self._cache[f].stat != key:
                stale.append((f, key))
        if stale:
            from .. import _core

            infos = _core.scan_files([f for f, _ in stale], ["test"], ["Test"], 0)
            for (f, key), info in zip(stale, infos):
                try:
                    text = Path(f).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    self._cache[f] = _Entry(key, None, None, True)
                    continue
                self._cache[f] = _Entry(key, import_names(info.imports), literal_names(text),
                                        "pytest_collect_file" in text)
        known = set(self.files)
        for f in [f for f in self._cache if f not in known]:
            del self._cache[f]
        self._importers, self._unreadable = {}, set()
        for f in self.files:
            entry = self._cache.get(f)
            if entry is None:
                continue
            if entry.imports is None or entry.literals is None:
                self._unreadable.add(f)
                continue
            for name in entry.imports | entry.literals:  # a name spelled in a string counts as imported
                self._importers.setdefault(name, set()).add(f)

    def reach(self, changed: Iterable[str]) -> set[str]:
        """The changed paths and every project file that reaches one, transitively (see the module
        docstring: by module name; an unreadable file reaches everything)."""
        reached = set(changed)
        frontier = set(reached)
        while frontier:
            names = set().union(*(module_names(p, self.rootdir) for p in frontier))
            frontier = set().union(self._unreadable, *(self._importers.get(n, ()) for n in names)) - reached
            reached |= frontier
        return reached

    def conftest_collector(self) -> str | None:
        """A conftest that implements pytest_collect_file (it may collect any file), or None."""
        for f in self.files:
            entry = self._cache.get(f)
            if os.path.basename(f) == "conftest.py" and entry is not None and entry.collects:
                return _rel(f, self.rootdir)
        return None


@dataclass(frozen=True)
class WatchPath:
    """One line of the ini key `fastcollect_watch_paths`: `PATTERN: TARGET ...`. A changed file that is not
    Python whose path relative to rootdir matches PATTERN (fnmatch: `*` also crosses `/`) runs the test files
    of the selection that match a TARGET (the same kind of pattern) instead of the whole selection."""

    pattern: str
    targets: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> WatchPath:
        """Raises ValueError for a line without `:` or without targets."""
        pattern, sep, targets = line.partition(":")
        if not sep or not pattern.strip() or not targets.split():
            raise ValueError(f"expected 'PATTERN: TARGET ...', got {line!r}")
        return cls(pattern.strip(), tuple(targets.split()))


def affected(changes: list[Change], selection: list[str], project: ProjectScan,
             watch_paths: Iterable[WatchPath] = ()) -> Plan:
    """The next run for `changes` (see the table in the module docstring). `selection`: the test files of
    the watched selection, in pytest's order, as walked after the changes; `project` the project's files
    (refreshed after the changes); `watch_paths` the user's mapping of other files to test files."""
    changed = sorted({c.path for c in changes})
    rel = lambda path: _rel(path, project.rootdir)  # noqa: E731
    python: list[str] = []
    data: list[str] = []
    mapped: set[str] = set()
    for change in changes:
        name = os.path.basename(change.path)
        if name in CONFIG_NAMES:
            return Plan(None, f"{rel(change.path)} configures pytest", changed)
        if not change.path.endswith(".py"):
            rule = next((w for w in watch_paths if fnmatch.fnmatch(rel(change.path), w.pattern)), None)
            if rule is None:
                return Plan(None, f"{rel(change.path)} is not a Python file (a test may read it)", changed)
            mapped |= {f for f in selection if any(fnmatch.fnmatch(rel(f), t) for t in rule.targets)}
            data.append(change.path)
            continue
        if change.kind == "deleted":
            return Plan(None, f"{rel(change.path)} was deleted", changed)
        python.append(change.path)
    in_selection = set(selection)
    collector = project.collects_python or project.conftest_collector()
    if collector and any(p not in in_selection for p in python):
        return Plan(None, f"{collector} collects Python files itself", changed)
    reached = project.reach(python)
    for path in sorted(reached):
        if os.path.basename(path) == "conftest.py":
            return Plan(None, f"{rel(path)} imports {_first(python, rel)}", changed)
        if path in project.startup_files:
            return Plan(None, f"{rel(path)} was imported when pytest started (a plugin)", changed)
    files = [f for f in selection if f in reached or f in mapped]
    if not files and mapped:
        return Plan([], "fastcollect_watch_paths maps the change to no test file of the selection", changed)
    if not files:
        return Plan([], f"no test file imports {_first(python, rel)}", changed)
    if not python:
        return Plan(files, f"fastcollect_watch_paths maps {_first(data, rel)} to {len(files)} test file(s)", changed)
    what = "test file reaches" if len(files) == 1 else "test files reach"
    return Plan(files, f"{len(files)} {what} {_first(python, rel)}", changed)


def _first(paths: list[str], rel: Any) -> str:
    shown = rel(sorted(paths)[0])
    return shown if len(paths) == 1 else f"{shown} and {len(paths) - 1} more"


def _rel(path: str, rootdir: str) -> str:
    try:
        return os.path.relpath(path, rootdir)
    except ValueError:
        return path
