"""Runs that must see the project's code from its first import: what a tool that measures from its start
(coverage, a tracer, a profiler, an import-time report) would miss in a run forked from the warm project,
or in a run that leaves test files unimported under -k/-m (a module only they import would be missing from
the coverage report: import_measuring()).

A level-1 template has executed the project's module-level code before any run exists, so a measuring tool
started by the run would miss it (pytest-cov reported 20% where a plain run reports 80%: module-level lines
ran in the template). Two cases, decided by what is really active, not by names alone:

- `local_reason()`: this process itself is measured from interpreter start-up (a trace or profile function,
  a `sys.monitoring` tool, tracemalloc, `-X importtime` / PYTHONPROFILEIMPORTTIME, `COVERAGE_PROCESS_START`),
  or wants what a fork server cannot give (`PYTHONHASHSEED=random`: a new hash seed per run). A forked
  child would carry none of it: the run is local.
- `fresh_reason(config)`: a plugin will start measuring during the run. Such a run is served from level 0,
  where pytest and its built-in plugins are imported and nothing else, exactly as in a plain process at the
  moment the plugin starts (pytest-cov starts coverage in `pytest_load_initial_conftests`, before any
  conftest). Known plugins are rules as data (`RULES`: the distribution and the options that activate it);
  any other loaded plugin whose distribution requires `coverage` counts as measuring whenever it is loaded
  (the plugin cannot be sure it is off, so it takes the slow path). Its xdist workers start cold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

#: Environment variables whose presence means the interpreter measures from start-up.
STARTUP_MEASURING_ENV = ("COVERAGE_PROCESS_START", "PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC")


@dataclass(frozen=True)
class Rule:
    """A measuring plugin: its distribution name (normalized: lower case, `-`), when it is active (a
    predicate on config.known_args_namespace), and what to call it in the header."""

    dist: str
    active: Callable[[Any], bool]
    what: str


def _truthy(*dests: str) -> Callable[[Any], bool]:
    return lambda ns: any(bool(getattr(ns, dest, None)) for dest in dests)


RULES = (
    # pytest-cov 7 (pytest_cov/plugin.py): CovPlugin is registered when `cov_source` is set (--cov), and
    # starts nothing with --no-cov
    Rule("pytest-cov", lambda ns: bool(getattr(ns, "cov_source", None)) and not getattr(ns, "no_cov", False),
         "coverage (pytest-cov --cov)"),
    # pytest-testmon 2 (testmon/pytest_testmon.py): selects and collects with --testmon, --testmon-noselect,
    # --testmon-nocollect, --testmon-forceselect or --tmnet
    Rule("pytest-testmon", _truthy("testmon", "testmon_noselect", "testmon_nocollect", "testmon_forceselect", "tmnet"),
         "pytest-testmon"),
)


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def local_reason(environ: dict[str, str] | None = None) -> str | None:
    """Why this process must run locally (see the module docstring), or None."""
    env = os.environ if environ is None else environ
    reason = startup_reason(env)
    if reason is None and env.get("PYTHONHASHSEED") == "random":
        reason = "PYTHONHASHSEED=random (a fork server shares one hash seed between runs)"
    return reason


def startup_reason(environ: dict[str, str] | None = None) -> str | None:
    """What measures this process from interpreter start-up (a tracer, a profiler, tracemalloc, an
    import-time report, COVERAGE_PROCESS_START), or None."""
    from .startup import process_measuring

    env = os.environ if environ is None else environ
    reason = process_measuring()
    if reason is not None:
        return reason
    for name in STARTUP_MEASURING_ENV:
        if env.get(name):
            return f"{name} is set"
    return None


def _requires_coverage(dist: Any) -> bool:
    """Whether the distribution requires `coverage` unconditionally (not only for an extra); Requires-Dist
    parsed with `packaging` (a dependency of pytest)."""
    try:
        requires = [r for r in (dist.requires or []) if "coverage" in r.lower()]  # (parse only candidates)
    except Exception:  # noqa: BLE001 - unreadable metadata: not known to measure
        return False
    if not requires:
        return False
    from packaging.requirements import InvalidRequirement, Requirement

    for text in requires:
        try:
            requirement = Requirement(str(text))
        except InvalidRequirement:
            continue
        if _normalize(requirement.name) == "coverage" and "extra" not in str(requirement.marker or ""):
            return True
    return False


def fresh_reason(options: Any, dists: Iterable[Any]) -> str | None:
    """Why the run must be served with the project imported fresh (level 0), or None. `options`:
    config.known_args_namespace; `dists`: the distributions of the loaded plugins (importlib.metadata
    Distribution objects, from pluginmanager.list_plugin_distinfo())."""
    rules = {rule.dist: rule for rule in RULES}
    for dist in dists:
        try:
            name = _normalize(dist.metadata["Name"] or "")
        except Exception:  # noqa: BLE001
            continue
        rule = rules.get(name)
        if rule is not None:
            if rule.active(options):
                return f"{rule.what} measures from its start"
            continue
        if name == "coverage" or _requires_coverage(dist):
            return f"plugin {name} uses coverage"
    return None


def plugin_dists(config: Any) -> list[Any]:
    """The distributions of the plugins pytest loaded from entry points (each once)."""
    out: dict[str, Any] = {}
    for _, dist in config.pluginmanager.list_plugin_distinfo():
        try:
            out.setdefault(dist.metadata["Name"] or "", dist)
        except Exception:  # noqa: BLE001
            continue
    return list(out.values())


def import_measuring(config: Any) -> str | None:
    """Why what this run imports is measured (a coverage report lists the files imported, and their
    module-level lines), or None: then -k/-m must not leave a test file unimported (flow.py)."""
    return startup_reason() or fresh_reason(config.known_args_namespace, plugin_dists(config))
