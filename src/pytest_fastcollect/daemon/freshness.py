"""What the template imported, and what a change since then means for the next run.

At the end of warming, the template records a fingerprint (stat + XXH3) of every project file it holds as a
module (under rootdir, outside the interpreter's and site folders), of every test file it imported wherever
it lies (`--pyargs` runs collect test files inside site-packages), of every other module file it holds
outside the standard library ("installed": third-party packages, editable installs of sibling projects), of
the ini and config files, and the modification times of the folders installed packages live in. Per request, a stat pass (C++,
_core.fingerprint_files) finds what changed; a changed stat is confirmed by hashing the bytes, so a touch or
a checkout that restores the same bytes changes nothing. Then plan() decides:

- installed packages changed (a site folder's mtime moved: pip install/uninstall, a new .pth; or the file of
  an installed module the template holds changed in place): the daemon restarts; the run is local.
- a conftest, an ini/config file, or a project module imported before collection started (at configure
  time, by pytest or a plugin or a conftest) changed, or lies in the reverse-import closure of a change: the
  run is refused (it runs locally) and the template rebuilds.
- otherwise: the run child evicts from sys.modules every changed module, every module that imports one
  transitively (graph/: the scanner's static imports), and every submodule of an evicted package, so pytest
  imports fresh code exactly as a plain run would.

A file whose mtime is not older than the start of warming (less a 1 s margin for coarse file-system clocks)
may have changed after it was imported: it is recorded as changed from the start.
"""

from __future__ import annotations

import os
import site
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Iterable, Mapping

from .. import _core

#: Names pytest looks for when it searches for an ini file (_pytest/config/findpaths.py locate_config).
CONFIG_NAMES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
#: A file modified less than this before the warm-up started may have changed after its import.
RACY_MARGIN_NS = 1_000_000_000


@dataclass
class Entry:
    """One recorded file. `kind`: "module" (project module or test file), "conftest", "configure" (project
    module imported before collection), "installed" (any other module file held, outside the standard
    library) or "config" (ini/config file; `exists` may be False: creating it is a change)."""

    path: str
    kind: str
    exists: bool
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    xxh3: int | None = None
    modules: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """What one request gets: `refuse` (a reason: the run goes local) with `rebuild`/`restart`, or the
    module names to `evict` in the child. `changed`: changed paths, sorted."""

    changed: list[str]
    evict: list[str] = field(default_factory=list)
    refuse: str | None = None
    rebuild: bool = False
    restart: bool = False


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def excluded_folders() -> list[str]:
    """Folders whose modules are never project modules: the interpreter's prefixes and site folders."""
    out = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out.update(_site_package_folders())
    return sorted(out)


def module_files(modules: Mapping[str, ModuleType]) -> dict[str, list[str]]:
    """Resolved path -> module names, for every module loaded from a source or extension file."""
    out: dict[str, list[str]] = {}
    for name, mod in list(modules.items()):
        file = getattr(mod, "__file__", None)
        if isinstance(file, str) and file.endswith((".py", ".so", ".pyd")):
            out.setdefault(os.path.realpath(file), []).append(name)
    return out


def stdlib_folders() -> list[str]:
    """The standard library's folders (where `os` and the `_struct` extension live, and sysconfig's
    "stdlib"): part of the interpreter, whose path and version are in the daemon's key, so their files are
    not fingerprinted. site-packages folders inside them are not part of it (Snapshot)."""
    import _struct
    import sysconfig

    folders = {os.path.dirname(os.__file__), sysconfig.get_paths().get("stdlib") or ""}
    folders.add(os.path.dirname(getattr(_struct, "__file__", "") or ""))
    return sorted({os.path.realpath(f) for f in folders if f})


def _site_package_folders() -> list[str]:
    """site.getsitepackages() and the user site folder, resolved."""
    out: set[str] = set()
    try:
        out.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # virtualenv's old site.py
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        out.add(os.path.realpath(user_site))
    return sorted(out)


def config_candidates(rootdir: str, invocation_dir: str, inipath: str | None) -> list[str]:
    """The ini file in use and every place pytest would look for one between the invocation folder and
    rootdir (a new file there changes the configuration)."""
    out: list[str] = []
    if inipath:
        out.append(os.path.realpath(inipath))
    root = Path(rootdir).resolve()
    here = Path(invocation_dir).resolve()
    folders = [root]
    if here == root or root in here.parents:
        folders = [here, *[p for p in here.parents if p == root or root in p.parents]]
    for folder in folders:
        for name in CONFIG_NAMES:
            path = str(folder / name)
            if path not in out:
                out.append(path)
    return out


def site_folders(rootdir: str) -> dict[str, int]:
    """mtime_ns of every existing sys.path folder outside rootdir (where installed packages live)."""
    root = os.path.realpath(rootdir)
    excluded = excluded_folders()
    out: dict[str, int] = {}
    for entry in sys.path:
        path = os.path.realpath(entry or ".")
        if _under(path, [root]) and not _under(path, excluded):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isdir(path):
            out[path] = st.st_mtime_ns
    return out


class Snapshot:
    """The recorded state of one warm template (see the module docstring)."""

    def __init__(
        self,
        rootdir: str,
        modules: Mapping[str, ModuleType],
        configure_modules: set[str],
        config_files: list[str],
        warm_started_ns: int,
        import_roots: list[str],
        test_files: Iterable[str] = (),
        inherited: Snapshot | None = None,
        edges: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """`inherited`: the snapshot of the process this one was forked from (level 0 for a level 1): its
        entries' fingerprints and dirty marks are kept for the files of modules it had loaded. `edges`:
        module name -> names of the modules that hold it (held_modules(): what the warm-up really saw),
        added to the static import graph when a change's importers are computed."""
        self.rootdir = rootdir
        self.created = time.time()
        files = module_files(modules)
        root, excluded = [os.path.realpath(rootdir)], excluded_folders()
        tests = {os.path.realpath(p) for p in test_files}  # wherever they lie (--pyargs: in site-packages)
        by_path = {
            path: names for path, names in files.items()
            if path.endswith(".py") and (path in tests or (_under(path, root) and not _under(path, excluded)))
        }
        stdlib, site_dirs = stdlib_folders(), _site_package_folders()
        installed = {
            path: names for path, names in files.items()
            if path not in by_path and not (_under(path, stdlib) and not _under(path, site_dirs))
        }
        self.entries: dict[str, Entry] = {}
        for path, names in by_path.items():
            if os.path.basename(path) == "conftest.py":
                kind = "conftest"
            elif any(n in configure_modules for n in names):
                kind = "configure"
            else:
                kind = "module"
            self.entries[path] = Entry(path, kind, True, modules=sorted(names))
        for path, names in installed.items():
            self.entries[path] = Entry(path, "installed", True, modules=sorted(names))
        for path in config_files:
            self.entries.setdefault(path, Entry(path, "config", False))
        self.site = site_folders(rootdir)
        paths = list(self.entries)
        self.dirty: set[str] = set()
        for path, fp in zip(paths, _core.fingerprint_files(paths, True, 0)):
            entry = self.entries[path]
            earlier = inherited.entries.get(path) if inherited is not None else None
            if earlier is not None and earlier.exists and entry.kind != "config":
                for name in ("exists", "mtime_ns", "ctime_ns", "size", "inode", "xxh3"):
                    setattr(entry, name, getattr(earlier, name))
                if path in inherited.dirty:  # type: ignore[union-attr]
                    self.dirty.add(path)
                continue
            _fill(entry, fp)
            if entry.exists and max(entry.mtime_ns, entry.ctime_ns) >= warm_started_ns - RACY_MARGIN_NS:
                self.dirty.add(path)
        self.holders = {name: set(held) for name, held in (edges or {}).items()}
        self.path_of = {name: path for path, e in self.entries.items() for name in e.modules}
        module_paths = [p for p, e in self.entries.items() if e.kind not in ("config", "installed") and e.exists]
        infos = _core.scan_files(module_paths, ["test"], ["Test"], 0)
        self.graph = _core.ImportGraph(module_paths, infos, [r for r in import_roots if os.path.isdir(r)])

    @property
    def module_count(self) -> int:
        return sum(len(e.modules) for e in self.entries.values())

    @property
    def project_file_count(self) -> int:
        """Recorded files other than installed modules (project modules, test files, conftests, config)."""
        return sum(1 for e in self.entries.values() if e.kind != "installed")

    def changed_paths(self) -> list[str]:
        """Recorded paths whose content differs from the recording (stat first, then XXH3), plus the dirty
        ones. A stat change with the same bytes refreshes the recorded stat."""
        paths = list(self.entries)
        changed = set(self.dirty)
        suspects: list[str] = []
        for path, fp in zip(paths, _core.fingerprint_files(paths, False, 1)):
            e = self.entries[path]
            if fp.exists != e.exists:
                changed.add(path)
            elif e.exists and (fp.mtime_ns, fp.ctime_ns, fp.size, fp.inode) != (e.mtime_ns, e.ctime_ns, e.size, e.inode):
                suspects.append(path)
        for path, fp in zip(suspects, _core.fingerprint_files(suspects, True, 1)):
            e = self.entries[path]
            if fp.exists and fp.xxh3 is not None and fp.xxh3 == e.xxh3:
                _fill(e, fp)  # same bytes: a touch, or a checkout that restored them
            else:
                changed.add(path)
        return sorted(changed)

    def stale_closure(self, changed: list[str]) -> set[str]:
        """The changed paths and every recorded path that imports one, transitively: the scanner's static
        graph and the holders the warm-up saw (held_modules), until neither adds a path."""
        stale = set(changed)
        while True:
            grown = set(self.graph.reverse_closure(sorted(stale)))
            names = {n for p in grown for n in (self.entries[p].modules if p in self.entries else ())}
            frontier = set(names)
            while frontier:
                frontier = {h for n in frontier for h in self.holders.get(n, ())} - names
                names |= frontier
            grown |= {self.path_of[n] for n in names if n in self.path_of}
            if grown == stale:
                return stale
            stale = grown

    def site_changed(self) -> list[str]:
        now = site_folders(self.rootdir)
        return sorted(p for p in set(now) | set(self.site) if now.get(p) != self.site.get(p))

    def plan(self, modules: Mapping[str, ModuleType]) -> Plan:
        """Decide what a request gets (see the module docstring)."""
        site_changes = self.site_changed()
        changed = self.changed_paths()
        if site_changes:
            return Plan(changed, refuse=f"installed packages changed ({site_changes[0]})", restart=True)
        installed = [p for p in changed if self.entries[p].kind == "installed"]
        if installed:
            return Plan(changed, refuse=f"installed module {installed[0]} changed", restart=True)
        if not changed:
            return Plan([])
        stale = self.stale_closure(changed)
        for path in sorted(stale):
            entry = self.entries.get(path)
            if entry is None:
                continue
            if entry.kind == "installed":
                return Plan(changed, refuse=f"installed module {path} holds a changed module", rebuild=True)
            if entry.kind in ("conftest", "config", "configure"):
                what = {"conftest": "conftest", "config": "config file", "configure": "module imported at configure time"}
                cause = "changed" if path in changed else "imports a changed module"
                return Plan(changed, refuse=f"{what[entry.kind]} {path} {cause}", rebuild=True)
        names: set[str] = set()
        for path in stale:
            entry = self.entries.get(path)
            if entry is not None:
                names.update(entry.modules)
        # A package's submodules go with it: a fresh package object would not have them as attributes.
        packages = {n for n in names if getattr(modules.get(n), "__path__", None) is not None}
        if packages:
            for name in list(modules):
                if any(name.startswith(p + ".") for p in packages):
                    names.add(name)
        return Plan(changed, evict=sorted(names))


def held_modules(modules: Mapping[str, ModuleType], events: Mapping[str, Iterable[Any]] | None = None) -> dict[str, set[str]]:
    """Module name -> names of the modules that hold it, as the warm-up really left them: a module global
    that is the module (`import x`, `m = importlib.import_module("x")`) or an object defined in it (`from x
    import f`: f.__module__), and the imports the audit hook saw while it ran (replay.ImportLog.events:
    ("import", name) under the importing module). Complements the scanner's static graph, which misses
    imports by name; holders are kept only for modules with a file."""
    out: dict[str, set[str]] = {}

    def add(held: str, holder: str) -> None:
        if held != holder and held in modules:
            out.setdefault(held, set()).add(holder)

    for holder, module in list(modules.items()):
        if not isinstance(getattr(module, "__file__", None), str):
            continue
        try:
            values = list(vars(module).values())
        except TypeError:
            continue
        for value in values:
            if isinstance(value, ModuleType):
                add(value.__name__, holder)
            else:
                owner = getattr(value, "__module__", None) if isinstance(value, (type, FunctionType)) else None
                if isinstance(owner, str):
                    add(owner, holder)
    for holder, items in (events or {}).items():
        for item in items:
            if item and item[0] == "import" and isinstance(item[1], str):
                add(item[1], holder)
    return out


def _fill(entry: Entry, fp: object) -> None:
    entry.exists = bool(getattr(fp, "exists"))
    entry.mtime_ns = int(getattr(fp, "mtime_ns"))
    entry.ctime_ns = int(getattr(fp, "ctime_ns"))
    entry.size = int(getattr(fp, "size"))
    entry.inode = int(getattr(fp, "inode"))
    entry.xxh3 = getattr(fp, "xxh3")


def evict(modules: dict[str, ModuleType], names: Iterable[str]) -> int:
    """Remove `names` from `modules` (sys.modules in a run child); returns how many were there."""
    count = 0
    for name in names:
        if modules.pop(name, None) is not None:
            count += 1
    return count
