"""Walk and scan the files a pytest run will consider: the C++ core behind one call.

This module changes nothing in pytest's collection; it produces a ScanReport that later stages (selection,
cache) consume and that the report header summarises.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import _core
from .cache import CacheLocation
from .errors import one_line
from .paths import PathRules, path_rules


@dataclass
class ScanReport:
    """Outcome of one walk + scan. Times in seconds; `modules` are _core.ModuleInfo in walk order."""

    files: list[str]
    modules: list[Any]
    conftests: list[str]
    walk_seconds: float
    scan_seconds: float
    threads: int
    errors: list[str] = field(default_factory=list)
    cache: Any = None  # _core.CacheStats when the discovery cache was used

    @property
    def uncertain(self) -> int:
        """Files the static model cannot fully see (they will always be imported)."""
        return sum(1 for m in self.modules if not m.certain)

    @property
    def parse_errors(self) -> int:
        return sum(1 for m in self.modules if m.parse_error or m.error)

    def tests_found(self, python_classes: list[str]) -> int:
        """Static count of test-shaped definitions (before parametrization)."""
        return sum(m.test_count(python_classes) for m in self.modules)


def walk(rules: PathRules, threads: int = 0) -> Any:
    """The C++ walk of `rules.roots` with pytest's path rules: a _core.WalkResult (files in pytest's
    collection order, conftests, errors)."""
    return _core.walk(
        rules.roots,
        rules.python_files,
        rules.norecursedirs,
        rules.ignore_paths,
        rules.ignore_globs,
        rules.collect_in_virtualenv,
        threads,
    )


def scan(
    rules: PathRules,
    python_functions: list[str],
    python_classes: list[str],
    threads: int = 0,
    cache: CacheLocation | None = None,
) -> ScanReport:
    """Walk `rules.roots` with pytest's path rules, then parse every candidate `.py` file on `threads`
    threads (0 = one per core), through the discovery cache at `cache` when given. Raises nothing for
    per-file problems (they are in the ModuleInfo) or for a bad cache file (see CacheStats.warning)."""
    t0 = time.perf_counter()
    walked = walk(rules, threads)
    t1 = time.perf_counter()
    py_files = [f for f in walked.files if f.endswith(".py")]
    stats = None
    if cache is not None:
        db = _core.DiscoveryCache(cache.path, cache.read_only)
        modules, stats = db.scan(py_files, python_functions, python_classes, threads)
        del db  # closes the connection on this thread
    else:
        modules = _core.scan_files(py_files, python_functions, python_classes, threads)
    t2 = time.perf_counter()
    return ScanReport(
        files=py_files,
        modules=list(modules),
        conftests=list(walked.conftests),
        walk_seconds=t1 - t0,
        scan_seconds=t2 - t1,
        threads=threads or (os.cpu_count() or 1),
        errors=list(walked.errors),
        cache=stats,
    )


class ScanJob:
    """A walk + scan running on a background thread (the core releases the GIL, so pytest's own start-up,
    conftest imports and collection go on meanwhile). `result()` joins; an exception in the job is
    returned as `failure`, never raised into pytest."""

    def __init__(
        self,
        rules: PathRules,
        python_functions: list[str],
        python_classes: list[str],
        threads: int,
        cache: CacheLocation | None = None,
    ) -> None:
        self._args = (rules, python_functions, python_classes, threads, cache)
        self._report: ScanReport | None = None
        self._failure: str | None = None
        # Not a daemon thread: the interpreter joins it before it finalizes, so a run that ends before
        # pytest_unconfigure (usage error, pytest.exit in a conftest) never tears down a scan mid-flight.
        self._thread = threading.Thread(target=self._run, name="fastcollect-scan", daemon=False)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._report = scan(*self._args)
        except Exception as exc:  # noqa: BLE001 - reported as one line by the plugin
            self._failure = one_line(exc)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float | None = None) -> tuple[ScanReport | None, str | None]:
        """(report, failure): exactly one is set once the job ended; (None, None) on timeout."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None, None
        return self._report, self._failure


def background_threads() -> int:
    """Scanner threads for a background scan: one core is left to pytest's main thread (min 1)."""
    return max(1, (os.cpu_count() or 1) - 1)


def start_scan(
    config: pytest.Config, args: list[str], options: Any, threads: int = 0, cache: CacheLocation | None = None
) -> ScanJob:
    """Start the walk + scan of this run in the background. `args`/`options`: the command-line args and
    option namespace as known at this point (see paths.path_rules); `threads` 0 = background_threads().
    Errors in resolving the rules raise."""
    threads = threads or background_threads()
    return ScanJob(
        path_rules(config, args, options),
        [str(p) for p in config.getini("python_functions")],
        [str(p) for p in config.getini("python_classes")],
        threads,
        cache,
    )
