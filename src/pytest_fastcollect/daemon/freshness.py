"""What the template imported, and what a change since then means for the next run.

At the end of warming, the template records a fingerprint (fingerprints.py: stat + XXH3, read when the
warm-up started) of every module file it holds outside the standard library, classified by the one rule
environment.Classifier applies for the records too: "project" (under rootdir, outside the interpreter's
folders, any conftest, the packages holding the test files: `--pyargs` runs collect test files inside
site-packages) or "installed" (third-party packages, and every extension module); of the ini and config
files; and the modification times of the folders installed packages live in. Per request, a stat pass
(C++) finds what changed; a changed stat is confirmed by hashing the bytes, so a touch or a checkout that
restores the same bytes changes nothing. Then plan() decides:

- installed packages changed (a site folder's mtime moved: pip install/uninstall, a new .pth; or the file of
  an installed module the template holds changed in place, or holds a changed project module): the run is
  refused and the daemon restarts or rebuilds.
- a conftest, an ini/config file, or a project module imported before collection started (at configure
  time, by pytest or a plugin or a conftest) changed, or lies in the reverse-import closure of a change: the
  run is refused (level 0 serves it) and the template rebuilds.
- otherwise: the run child evicts from sys.modules every changed module, every module that imports or
  holds one transitively (graph/: the scanner's static imports; held_modules: what the warm-up really
  left), and every submodule of an evicted package, so pytest imports fresh code as a plain run would.

A file written when or after the warm-up started (less the file-system clock's coarseness) may have changed
after it was imported: its fingerprint is untrusted (fingerprints.py), and it counts as changed from the
start; the template warms again once it is settled.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import Any, Iterable, Mapping

from .. import _core, fingerprints
from ..environment import Classifier, site_folders
from ..fingerprints import Fingerprint



@dataclass
class Entry:
    """One recorded file. `kind`: "module" (project module or test file), "conftest", "configure" (project
    module imported before collection), "installed" (any other module file held, outside the standard
    library) or "config" (ini/config file; it may not exist: creating it is a change). `fp`: its
    fingerprint, read when the warm-up started (fingerprints.py)."""

    path: str
    kind: str
    fp: Fingerprint
    modules: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.fp.exists


@dataclass
class Plan:
    """What one request gets: `refuse` (a reason: the run goes local) with `rebuild`/`restart`, or the
    module names to `evict` in the child. `changed`: changed paths, sorted."""

    changed: list[str]
    evict: list[str] = field(default_factory=list)
    refuse: str | None = None
    rebuild: bool = False
    restart: bool = False


def module_files(modules: Mapping[str, ModuleType]) -> dict[str, list[str]]:
    """Resolved path -> module names, for every module loaded from a source or extension file."""
    out: dict[str, list[str]] = {}
    for name, mod in list(modules.items()):
        file = getattr(mod, "__file__", None)
        if isinstance(file, str) and file.endswith((".py", ".so", ".pyd")):
            out.setdefault(os.path.realpath(file), []).append(name)
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
        tests = {os.path.realpath(p) for p in test_files}
        classifier = Classifier(os.path.realpath(rootdir), tests, resolve=True)
        kinds = {path: classifier.classify(path) for path in files}
        self.entries: dict[str, Entry] = {}
        later: list[tuple[str, str, list[str]]] = []
        for path, names in files.items():
            if kinds[path] == "stdlib":
                continue
            if kinds[path] == "installed" or not path.endswith(".py"):  # (an extension module cannot be evicted)
                kind = "installed"
            elif os.path.basename(path) == "conftest.py":
                kind = "conftest"
            elif any(n in configure_modules for n in names) and path not in tests:
                kind = "configure"
            else:
                kind = "module"
            later.append((path, kind, sorted(names)))
        later += [(path, "config", []) for path in config_files if path not in files]
        fps = fingerprints.take([p for p, _, _ in later], warm_started_ns)
        for path, kind, names in later:
            earlier = inherited.entries.get(path) if inherited is not None else None
            fp = earlier.fp if earlier is not None and earlier.exists and kind != "config" else fps[path]
            self.entries[path] = Entry(path, kind, fp, names)
        self.site = site_folders(rootdir)
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

    @property
    def dirty(self) -> set[str]:
        """Files that may have been written after the template read them (racy fingerprints): changed from
        the start, until a new warm-up reads them again."""
        return {p for p, e in self.entries.items() if e.fp.untrusted}

    def changed_paths(self) -> list[str]:
        """Recorded paths whose content differs from the recording, and the racy ones (fingerprints.changed);
        a stat change with the same bytes refreshes the recorded fingerprint."""
        refresh: dict[str, Fingerprint] = {}
        out = fingerprints.changed({p: e.fp for p, e in self.entries.items()}, refresh)
        for path, fp in refresh.items():
            self.entries[path].fp = fp
        return sorted(out)

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
        own = [p for p in changed if _is_own(p)]
        if own:  # the daemon's own code: a run child must not re-import it (it would forget its role)
            return Plan(changed, refuse=f"pytest-fastcollect's own module {own[0]} changed", restart=True)
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
        # never the daemon's own modules (a changed one refuses above): a run child re-importing them would
        # lose its role (runtime.ROLE) and hand itself to the daemon again
        return Plan(changed, evict=sorted(n for n in names if n != "pytest_fastcollect"
                                          and not n.startswith("pytest_fastcollect.")))


#: The pytest_fastcollect package's folder as imported, and as the files really are (an editable install, or
#: a package whose files are symlinks)
_OWN_FOLDERS = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _is_own(path: str) -> bool:
    """A file of the pytest_fastcollect package."""
    return any(p.startswith(folder + os.sep) for p in (os.path.abspath(path), os.path.realpath(path))
               for folder in _OWN_FOLDERS)


def held_modules(modules: Mapping[str, ModuleType], events: Mapping[str, Iterable[Any]] | None = None) -> dict[str, set[str]]:
    """Module name -> names of the modules that hold it, as the warm-up really left them: a module global
    that is the module (`import x`, `m = importlib.import_module("x")`) or an object defined in it (`from x
    import f`: f.__module__; not a package's attribute for its own submodule, which the import system binds),
    and the imports the audit hook saw while it ran (replay.ImportLog.events:
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
            items = list(vars(module).items())
        except TypeError:
            continue
        for name, value in items:
            if isinstance(value, ModuleType):
                if value.__name__ == f"{holder}.{name}":
                    # a package's attribute for its own submodule: the import system binds it, and binds it
                    # again when a run child re-imports the submodule. An __init__ that imports the
                    # submodule itself is an edge of the static graph (or of the audit hook's events).
                    continue
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
