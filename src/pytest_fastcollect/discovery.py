"""Walk and scan the files a pytest run will consider: the C++ core behind one call.

This module changes nothing in pytest's collection; it produces a ScanReport that later stages (selection,
cache) consume and that the report header summarises.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import _core
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


def scan(rules: PathRules, python_functions: list[str], python_classes: list[str], threads: int = 0) -> ScanReport:
    """Walk `rules.roots` with pytest's path rules, then parse every candidate `.py` file on `threads`
    threads (0 = one per core). Raises nothing for per-file problems (they are in the ModuleInfo)."""
    t0 = time.perf_counter()
    walked = _core.walk(
        rules.roots,
        rules.python_files,
        rules.norecursedirs,
        rules.ignore_paths,
        rules.ignore_globs,
        rules.collect_in_virtualenv,
        threads,
    )
    t1 = time.perf_counter()
    py_files = [f for f in walked.files if f.endswith(".py")]
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
    )


def scan_for_config(config: pytest.Config, threads: int = 0) -> ScanReport:
    """scan() with the rules and name patterns of this pytest run."""
    return scan(
        path_rules(config),
        [str(p) for p in config.getini("python_functions")],
        [str(p) for p in config.getini("python_classes")],
        threads,
    )
