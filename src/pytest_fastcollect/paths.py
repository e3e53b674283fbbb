"""The run's initial paths and path rules, resolved the way pytest resolves them.

Sources: _pytest/main.py (resolve_collection_argument, search_pypath, pytest_ignore_collect),
_pytest/python.py (python_files), _pytest/pathlib.py (absolutepath).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PathRules:
    """What the C++ walker needs (every path absolute, str)."""

    roots: list[str]
    python_files: list[str]
    norecursedirs: list[str]
    ignore_paths: list[str] = field(default_factory=list)
    ignore_globs: list[str] = field(default_factory=list)
    collect_in_virtualenv: bool = False


def _module_path(name: str) -> str | None:
    """pytest's search_pypath: a module name to its file, or its package folder. None if not found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or spec.origin is None or spec.origin in ("namespace", "built-in", "frozen"):
        if spec is not None and spec.submodule_search_locations:
            locations = list(spec.submodule_search_locations)
            return locations[0] if locations else None
        return None
    if spec.submodule_search_locations:
        return os.path.dirname(spec.origin)
    return spec.origin


def initial_paths(config: pytest.Config) -> list[str]:
    """config.args (already defaulted to testpaths or the invocation dir by pytest) as absolute paths,
    without `::name` or `[param]` parts; module names under --pyargs resolved like pytest does."""
    invocation = config.invocation_params.dir
    pyargs = bool(config.getoption("pyargs", default=False))
    out: list[str] = []
    seen: set[str] = set()
    for arg in config.args:
        base = str(arg).partition("[")[0]
        strpath = base.split("::")[0]
        resolved: str | None = None
        if pyargs:
            resolved = _module_path(strpath)
        if resolved is None:
            resolved = os.path.abspath(os.path.join(invocation, strpath))
        resolved = os.path.normpath(resolved)
        if resolved not in seen:
            seen.add(resolved)
            out.append(resolved)
    return out


def path_rules(config: pytest.Config) -> PathRules:
    """The path rules of this run, read from pytest's own option and ini values."""
    ignore = [os.path.abspath(p) for p in (config.getoption("ignore", default=None) or [])]
    ignore_glob = [os.path.abspath(p) for p in (config.getoption("ignore_glob", default=None) or [])]
    return PathRules(
        roots=initial_paths(config),
        python_files=[str(p) for p in config.getini("python_files")],
        norecursedirs=[str(p) for p in config.getini("norecursedirs")],
        ignore_paths=ignore,
        ignore_globs=ignore_glob,
        collect_in_virtualenv=bool(config.getoption("collect_in_virtualenv", default=False)),
    )


def rootdir_relative(path: str | Path, rootdir: Path) -> str:
    """`path` relative to rootdir with `/` separators, as node IDs spell it (absolute if outside)."""
    try:
        return Path(path).relative_to(rootdir).as_posix()
    except ValueError:
        return Path(path).as_posix()
