"""What a batch of saved changes means for the next run of watch mode.

Two concerns, each a rule table:

- `ignored(path)`: events nobody's tests depend on: version control, caches, build output, virtual
  environments, bytecode, editor swap and backup files (the folder and name lists below; watchfiles'
  DefaultFilter lists most of them too), and the folders given by the caller (pytest's cache_dir).
- `affected(changes, selection)`: which tests the next run must include. The answer is sound first: it may
  run more than the change can reach, never less. Anything the rules cannot tell about means the whole
  selection:

  | change | next run |
  |---|---|
  | a test file of the selection modified or added, whose module no other project file names (an import the scanner sees, or its dotted name in a string, as `importlib.import_module` takes it) | that test file |
  | a test file deleted, a conftest, an ini or config file, any other Python file, any other file | the whole selection |

  (Other Python files, helpers and the code under test, select the whole selection for now: the warm
  daemon re-imports only what they reach, so such a run is still a warm one.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

#: Folder names whose contents are never a project edit.
IGNORED_DIRS = frozenset({
    "__pycache__", ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".eggs", ".idea", ".vscode", "node_modules", "htmlcov", ".cache",
})
#: Folder-name prefixes likewise: pytest's cache folder while it is created (Cache.mkdir: a temporary folder
#: renamed to .pytest_cache, _pytest/cacheprovider.py).
IGNORED_DIR_PREFIXES = ("pytest-cache-files-",)
#: File-name patterns that are never a project edit: bytecode, editor swap/backup/lock files (vim's .swp and its
#: `4913` probe, emacs' `#x#` and `.#x`, `x~`, JetBrains' safe-write temporaries), coverage data.
IGNORED_NAMES = re.compile(
    r"(\.py[cod]$|\.sw[a-p]$|~$|^\.#|^#.*#$|^4913$|___jb_(old|tmp)___$|^\.coverage(\..*)?$|^\.DS_Store$)"
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

    @property
    def whole(self) -> bool:
        return self.files is None


def _module_names(path: str, rootdir: str) -> set[str]:
    """The names a module file may be imported by: its stem, and its dotted paths relative to each of its
    parent folders up to rootdir (`tests/unit/test_x.py`: test_x, unit.test_x, tests.unit.test_x)."""
    p = Path(path)
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


def named_elsewhere(path: str, project_files: Iterable[str], rootdir: str, imports: dict[str, set[str]]) -> str | None:
    """The first project file other than `path` that names `path`'s module (see the module docstring), or
    None. `imports`: per project file, every dotted name and component its import statements use
    (import_names). Files that cannot be read count as naming it (we cannot tell)."""
    names = _module_names(path, rootdir)
    stem = Path(path).stem
    quoted = re.compile(r"""['"]([\w.]*\.)?""" + re.escape(stem) + r"""['"]""")
    for other in project_files:
        if other == path:
            continue
        if names & imports.get(other, set()):
            return other
        try:
            text = Path(other).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return other
        if stem in text and quoted.search(text):
            return other
    return None


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


def affected(changes: list[Change], selection: list[str], scan_project: "ProjectScan") -> Plan:
    """The next run for `changes` (see the table in the module docstring). `selection`: the test files of
    the watched selection, in pytest's order, as walked after the changes; `scan_project` tells which
    project files name a module."""
    changed = sorted({c.path for c in changes})
    in_selection = set(selection)
    test_files: set[str] = set()
    for change in changes:
        name = os.path.basename(change.path)
        if name in CONFIG_NAMES:
            return Plan(None, f"{_rel(change.path, scan_project.rootdir)} configures pytest", changed)
        if change.path not in in_selection:
            if change.kind == "deleted" and change.path.endswith(".py"):
                return Plan(None, f"{_rel(change.path, scan_project.rootdir)} was deleted", changed)
            what = "a Python file" if change.path.endswith(".py") else "a file"
            return Plan(None, f"{_rel(change.path, scan_project.rootdir)} is {what} outside the test files", changed)
        test_files.add(change.path)
    for path in sorted(test_files):
        other = scan_project.names(path)
        if other is not None:
            return Plan(None, f"{_rel(path, scan_project.rootdir)} is named by {_rel(other, scan_project.rootdir)}", changed)
    files = [f for f in selection if f in test_files]
    what = "test file" if len(files) == 1 else "test files"
    return Plan(files, f"{len(files)} {what} changed, named by no other module", changed)


class ProjectScan:
    """The project's Python files and their import statements (the C++ scanner), for named_elsewhere."""

    def __init__(self, rootdir: str, project_files: list[str]) -> None:
        self.rootdir = rootdir
        self.files = project_files
        self._imports: dict[str, set[str]] | None = None

    def names(self, path: str) -> str | None:
        if self._imports is None:
            from .. import _core

            infos = _core.scan_files(self.files, ["test"], ["Test"], 0)
            self._imports = {f: import_names(i.imports) for f, i in zip(self.files, infos)}
        return named_elsewhere(path, self.files, self.rootdir, self._imports)


def _rel(path: str, rootdir: str) -> str:
    try:
        return os.path.relpath(path, rootdir)
    except ValueError:
        return path
