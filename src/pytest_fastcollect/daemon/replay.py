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

    def warning_count(self) -> int:
        return sum(1 for evs in self.events.values() for e in evs if e[0] == "warn")


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
        # one registry per file, as each module's __warningregistry__ ("default" shows a location once)
        self.registries: dict[str, dict[Any, Any]] = {}

    def on_collect(self, path: str) -> None:
        name = self.test_modules.get(path)
        if name is None or name in self.visited:
            return
        warm = self.warm_objects.get(name)
        if warm is None or sys.modules.get(name) is not warm:
            return  # evicted or replaced: pytest imports it for real and its warnings are real
        stack: list[str] = []
        try:
            self._replay(name, stack)
        except Exception:  # noqa: BLE001 - a filter made a warning an error: import for real
            for mod in stack:
                sys.modules.pop(mod, None)

    def _replay(self, name: str, stack: list[str]) -> None:
        if name in self.visited:
            return
        self.visited.add(name)
        stack.append(name)
        for event in self.log.events.get(name, ()):
            if event[0] == "import":
                self._replay(event[1], stack)
            else:
                _, message, category, filename, lineno = event
                self.replayed += 1
                registry = self.registries.setdefault(filename, {})
                warnings.warn_explicit(message, category, filename, lineno, registry=registry)
        stack.pop()
