"""The run's initial paths and path rules, resolved the way pytest resolves them.

Sources: _pytest/main.py (resolve_collection_argument, search_pypath, pytest_ignore_collect),
_pytest/python.py (python_files), _pytest/pathlib.py (absolutepath).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

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
    """pytest's search_pypath (a module name to its file, or its package folder), without importing
    anything: pytest resolves --pyargs later, after conftests and configure, and importing a package earlier
    than pytest would could change what the run reports. Only the top-level name goes through the import
    system's finders (which do not import it); submodules are looked up with PathFinder in the parent's
    search locations. None when not found that way (the caller then skips that root)."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    try:
        spec = importlib.util.find_spec(parts[0])
        for part in parts[1:]:
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    if spec.origin in (None, "namespace", "built-in", "frozen"):
        locations = list(spec.submodule_search_locations or [])
        return locations[0] if locations else None
    if spec.submodule_search_locations:
        return os.path.dirname(spec.origin)
    return spec.origin


def positional_args(parser: Any, args: Sequence[str]) -> list[str]:
    """The positional arguments (paths, node IDs, --pyargs names) of command line `args` (pytest.Parser
    `parser`), also those that pytest 8's known-args parse leaves among the unknown ones (positionals after
    an option)."""
    given, unknown = parser.parse_known_and_unknown_args(list(args))
    return [*(getattr(given, "file_or_dir", None) or []), *(str(u) for u in unknown if not str(u).startswith("-"))]


def decide_args(config: pytest.Config, args: list[str], pyargs: bool) -> list[str]:
    """The run's initial args as pytest will decide them (testpaths or the invocation dir when none are
    given). Usable from pytest_load_initial_conftests, before config.args exists: uses pytest's own
    Config._decide_args when it has the known signature (pytest 8/9), else the same rule written here."""
    testpaths = [str(p) for p in config.getini("testpaths")]
    try:
        decided, _source = config._decide_args(  # noqa: SLF001 - pytest's own rule, private but stable in 8.x/9.x
            args=list(args),
            pyargs=pyargs,
            testpaths=testpaths,
            invocation_dir=config.invocation_params.dir,
            rootpath=config.rootpath,
            warn=False,
        )
        return [str(a) for a in decided]
    except (AttributeError, TypeError):
        if args:
            return list(args)
        if config.invocation_params.dir == config.rootpath and testpaths:
            if pyargs:
                return testpaths
            import glob

            found = [p for t in testpaths for p in sorted(glob.iglob(t, recursive=True))]
            if found:
                return found
        return [str(config.invocation_params.dir)]


def initial_paths(args: list[str], pyargs: bool, invocation_dir: str | Path) -> list[str]:
    """Initial args as absolute paths, without `::name` or `[param]` parts; module names under --pyargs
    resolved like pytest's resolve_collection_argument/search_pypath. Duplicates removed, order kept."""
    out: list[str] = []
    seen: set[str] = set()
    for arg in args:
        base = str(arg).partition("[")[0]
        strpath = base.split("::")[0]
        resolved: str | None = None
        if pyargs:
            resolved = _module_path(strpath)
        if resolved is None:
            resolved = os.path.abspath(os.path.join(invocation_dir, strpath))
        resolved = os.path.normpath(resolved)
        if resolved not in seen:
            seen.add(resolved)
            out.append(resolved)
    return out


def path_rules(config: pytest.Config, args: list[str], options: Any) -> PathRules:
    """The path rules of this run from pytest's own option and ini values. `options` is config.option or,
    before it is set (pytest_load_initial_conftests), config.known_args_namespace."""
    pyargs = bool(getattr(options, "pyargs", False))
    ignore = [os.path.abspath(p) for p in (getattr(options, "ignore", None) or [])]
    ignore_glob = [os.path.abspath(p) for p in (getattr(options, "ignore_glob", None) or [])]
    return PathRules(
        roots=initial_paths(decide_args(config, args, pyargs), pyargs, config.invocation_params.dir),
        python_files=[str(p) for p in config.getini("python_files")],
        norecursedirs=[str(p) for p in config.getini("norecursedirs")],
        ignore_paths=ignore,
        ignore_globs=ignore_glob,
        collect_in_virtualenv=bool(getattr(options, "collect_in_virtualenv", False)),
    )
