"""Import-time warnings, recorded in the template and replayed in a run child.

In a plain run, pytest imports test modules during collection, and whatever warnings their import raises
(an unknown `pytest.mark.slow` in a helper module, a DeprecationWarning from a library) land in the warnings
summary. In a run child those modules are already imported, so the warnings would silently vanish. The
template therefore records, while it warms, what every module's first execution did, in order: which
modules it imported ("import" audit events) and which warnings it raised (warnings.showwarning under an
"always" filter, attributed to the innermost module body on the stack). When the child collects a test
module that is still warm, Replayer walks that record depth-first, skipping modules a plain run would
already have imported by then, and re-issues each warning with warnings.warn_explicit under the filters
pytest has in force, so the summary is the same. If a filter turns one into an error, the modules on the
replayed path are evicted from sys.modules and pytest imports them for real (and reports the error as a
plain run would).

Not replayed (docs/how-it-works.md): warnings raised while the initial conftests and plugins were imported
(configure time), and those of modules imported only by a test file that changed since the warm-up.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

#: ("import", name) or ("warn", message, category, filename, lineno)
Event = tuple


class ImportLog:
    """Records, per module name, the ordered events of its first execution (see the module docstring).
    `root` is the module being imported at top level (events with no module body on the stack go there).
    Install once per process with sys.addaudithook(log.audit); it records only while `active`."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = {}
        #: module name -> modules its source imports (static, in source order), for the modules first
        #: loaded while test files were imported: a module imported from the cache records no event, yet in
        #: a run that collects fewer files it may be the one that loads them first.
        self.deps: dict[str, list[str]] = {}
        self.active = False
        self.root: str | None = None

    def _module(self) -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name == "<module>":
                name = frame.f_globals.get("__name__")
                if isinstance(name, str) and name != "__main__":
                    return name
            frame = frame.f_back
        return self.root

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or event != "import":
            return
        owner = self._module()
        if owner is not None and args and isinstance(args[0], str):
            self.events.setdefault(owner, []).append(("import", args[0]))

    def showwarning(self, message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        owner = self._module()
        if owner is not None:
            self.events.setdefault(owner, []).append(("warn", message, category, filename, lineno))

    def add_static_deps(self, modules: dict[str, Any], names: set[str]) -> None:
        """Fill `deps` for `names` (module names in `modules`) from the scanner's import statements,
        keeping only dependencies that are themselves in `names` (the others were loaded before the test
        files, at configure time, so no run replays them)."""
        from .. import _core

        files: list[str] = []
        owners: list[str] = []
        for name in sorted(names):
            file = getattr(modules.get(name), "__file__", None)
            if isinstance(file, str) and file.endswith(".py"):
                files.append(file)
                owners.append(name)
        for name, info in zip(owners, _core.scan_files(files, ["test"], ["Test"], 0)):
            package = name if getattr(modules.get(name), "__path__", None) is not None else name.rpartition(".")[0]
            out: list[str] = []
            for imp in info.imports:
                base = _absolute(imp.module, imp.level, package)
                if base is None:
                    continue
                parts = base.split(".") if base else []
                candidates = [".".join(parts[: i + 1]) for i in range(len(parts))]
                candidates += [f"{base}.{n}" if base else n for n in imp.names]
                out.extend(c for c in candidates if c in names and c != name and c not in out)
            if out:
                self.deps[name] = out

    def warning_count(self) -> int:
        return sum(1 for evs in self.events.values() for e in evs if e[0] == "warn")


def _absolute(module: str, level: int, package: str) -> str | None:
    """importlib's resolve_name for `from <level dots><module> import ...`; None if it goes above the top."""
    if level == 0:
        return module
    bits = package.split(".") if package else []
    if level - 1 > len(bits) or not package:
        return None
    base = ".".join(bits[: len(bits) - (level - 1)])
    return f"{base}.{module}" if module else base


class Replayer:
    """Per run child: replays the recorded warnings of each warm test module as it is collected.
    `test_modules`: path -> module name of the test files the warm-up imported; `already`: modules a
    plain run has imported before collection starts (configure time)."""

    def __init__(self, log: ImportLog, test_modules: dict[str, str], already: set[str], warm_objects: dict[str, Any]):
        self.log = log
        self.test_modules = test_modules
        self.visited = set(already)
        self.warm_objects = warm_objects
        self.replayed = 0
        #: modules whose replay raised (a filter made a warning an error): they were evicted, and like a
        #: failed import in a plain run they fail again for every later importer
        self.failed: set[str] = set()
        # one registry per file, as each module's __warningregistry__ ("default" shows a location once)
        self.registries: dict[str, dict[Any, Any]] = {}

    def on_collect(self, path: str) -> None:
        """Called when pytest starts collecting the test file at `path` (before it imports it)."""
        name = self.test_modules.get(path)
        warm = self.warm_objects.get(name) if name is not None else None
        if warm is not None and sys.modules.get(name) is warm:
            if name not in self.visited:
                self._guarded([name])
            return
        # Imported for real by pytest (new, changed, or not part of the warm-up): its own warnings are
        # real, but the warm modules it imports are cached, so theirs are replayed first.
        self._guarded(self._file_deps(path))

    def _guarded(self, names: list[str]) -> None:
        """Replay `names`; the warnings reach pytest only if none became an error (then the real import
        that follows raises them again, so nothing may be shown twice)."""
        for name in names:
            stack: list[str] = []
            with warnings.catch_warnings(record=True) as caught:  # keeps pytest's filters
                try:
                    self._replay(name, stack)
                    failed = False
                except Exception:  # noqa: BLE001 - a filter made a warning an error: import for real
                    failed = True
            if failed:
                self.failed.update(stack)
                for mod in stack:
                    sys.modules.pop(mod, None)
                return
            for message in caught:
                warnings._showwarnmsg(message)  # type: ignore[attr-defined] - to pytest's recorder

    def _file_deps(self, path: str) -> list[str]:
        """Warm modules with a record that the source at `path` imports (absolute imports only: its own
        module name, needed for relative ones, is not known before pytest imports it)."""
        from .. import _core

        try:
            (info,) = _core.scan_files([path], ["test"], ["Test"], 1)
        except Exception:  # noqa: BLE001
            return []
        out: list[str] = []
        for imp in info.imports:
            if imp.level or not imp.module:
                continue
            parts = imp.module.split(".")
            candidates = [".".join(parts[: i + 1]) for i in range(len(parts))]
            candidates += [f"{imp.module}.{n}" for n in imp.names]
            for c in candidates:
                if c not in out and c in sys.modules and (c in self.log.events or c in self.log.deps):
                    out.append(c)
        return out

    def _replay(self, name: str, stack: list[str]) -> None:
        if name in self.failed:
            stack.append(name)
            raise ImportError(f"{name} failed to import earlier in this run")
        if name in self.visited:
            return
        self.visited.add(name)
        stack.append(name)
        for dep in self.log.deps.get(name, ()):
            self._replay(dep, stack)
        for event in self.log.events.get(name, ()):
            if event[0] == "import":
                self._replay(event[1], stack)
            else:
                _, message, category, filename, lineno = event
                self.replayed += 1
                registry = self.registries.setdefault(filename, {})
                warnings.warn_explicit(message, category, filename, lineno, registry=registry)
        stack.pop()
