"""The template's warm-up: import what a pytest run would import, without running a session.

pytest's own start-up (`_prepareconfig`: plugins, the ini file, the initial conftests, the assertion
rewriting import hook) builds a Config; then every test file the run would collect (the C++ walker, with
pytest's path rules) is imported the way pytest's Module collector imports it (`_pytest.pathlib.import_path`
with the run's import mode), each after the conftests of its folder (`_loadconftestmodules`, as the
collector does), so test modules and conftests are assertion-rewritten exactly as in a plain run. No
session or collection hook runs, so nothing a conftest or plugin records during a session can leak into the
runs forked later; module-level code runs once, as in any pytest process. The config is configured
(pytest_configure) around the imports, as it is during a real collection, and unconfigured afterwards.

Then the Config is unconfigured (its cleanups remove the import hook and restore capture). A file that fails
to import is left out (the run child imports it, and reports the error, as pytest would).

If this pytest lacks the private functions used here, warm_session() runs pytest's own `--collect-only`
instead (hooks then run once in the template).
"""

from __future__ import annotations

import inspect
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .replay import ImportLog


@dataclass
class WarmResult:
    """`configure_modules`: names in sys.modules once the config was made (plugins, initial conftests and
    what they import); `imported`/`failed`: test files; `exit_code` for a session warm-up."""

    method: str
    configure_modules: set[str] = field(default_factory=set)
    inipath: str | None = None
    imported: int = 0
    failed: int = 0
    exit_code: int | None = None
    #: import-time events for replay.Replayer, and path -> module name of the imported test files
    log: ImportLog | None = None
    test_modules: dict[str, str] = field(default_factory=dict)
    #: client.files_digest of the candidate test files the walk found (what the served runs must match)
    files_digest: str = ""


def warm_imports(args: list[str]) -> WarmResult:
    """Import-only warm-up for command line `args` (see the module docstring). Raises AttributeError or
    TypeError if this pytest lacks the private API (the caller falls back to warm_session)."""
    from _pytest.config import _prepareconfig
    from _pytest.pathlib import fnmatch_ex, import_path

    from ..discovery import walk
    from ..paths import path_rules
    from .client import files_digest

    config = _prepareconfig(list(args))
    result = WarmResult("imports")
    try:
        # Configured, as pytest is when its collection imports test modules (import-time behaviour may
        # depend on it: e.g. `pytest.mark.X` warns about unregistered markers only in a configured process).
        config._do_configure()
        result.configure_modules = set(sys.modules)
        result.inipath = str(config.inipath) if config.inipath else None
        options = config.known_args_namespace
        rules = path_rules(config, list(options.file_or_dir or []), options)
        walked = walk(rules, 1)
        result.files_digest = files_digest([f for f in walked.files if f.endswith(".py")])
        importmode = config.getoption("importmode")
        rootpath = config.rootpath
        namespace_kw = _namespace_kwargs(config, import_path)
        patterns = [str(p) for p in config.getini("python_files")]
        pm = config.pluginmanager
        seen_dirs: set[Path] = set()
        log = ImportLog()
        sys.addaudithook(log.audit)  # permanent, but records only while log.active (the warm-up)
        result.log = log
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # every warning is recorded; the run's filters decide at replay
            warnings.showwarning = log.showwarning
            log.active = True
            try:
                for file in walked.files:
                    path = Path(file)
                    if not file.endswith(".py") or not any(fnmatch_ex(p, path) for p in patterns):
                        continue  # explicit non-matching files: the run imports them (rewriting depends on it)
                    if path.parent not in seen_dirs:
                        seen_dirs.add(path.parent)
                        try:
                            pm._loadconftestmodules(path.parent, importmode, rootpath, **namespace_kw)
                        except KeyboardInterrupt:
                            raise
                        except BaseException:  # noqa: BLE001 - a broken or skipping conftest: the run reports it
                            pass
                    try:
                        module = import_path(path, mode=importmode, root=rootpath, **namespace_kw)
                        result.imported += 1
                        result.test_modules[str(path)] = module.__name__
                    except KeyboardInterrupt:
                        raise
                    except BaseException:  # noqa: BLE001 - errors, pytest.skip at module level, sys.exit
                        result.failed += 1
            finally:
                log.active = False
        log.add_static_deps(sys.modules, set(sys.modules) - result.configure_modules)
    finally:
        config._ensure_unconfigure()
    return result


def _namespace_kwargs(config: Any, import_path: Any) -> dict[str, Any]:
    """`consider_namespace_packages` as pytest passes it (pytest >= 8.1), or nothing for older ones."""
    if "consider_namespace_packages" not in inspect.signature(import_path).parameters:
        return {}
    try:
        return {"consider_namespace_packages": bool(config.getini("consider_namespace_packages"))}
    except ValueError:
        return {"consider_namespace_packages": False}


class _SessionRecorder:
    def __init__(self, result: WarmResult) -> None:
        self.result = result

    def pytest_collection(self, session: Any) -> None:
        self.result.configure_modules = set(sys.modules)
        self.result.inipath = str(session.config.inipath) if session.config.inipath else None

    def pytest_collection_finish(self, session: Any) -> None:
        self.result.imported = len(session.items)


def warm_session(args: list[str]) -> WarmResult:
    """Fallback warm-up: pytest's own `--collect-only` session (output goes to the daemon's /dev/null)."""
    import pytest

    result = WarmResult("session")
    result.exit_code = int(pytest.main([*args, "--collect-only", "-q"], plugins=[_SessionRecorder(result)]))
    return result
