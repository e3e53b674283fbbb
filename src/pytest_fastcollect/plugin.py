"""pytest hook implementations of pytest-fastcollect (entry point `fastcollect`).

Hooks only: each delegates to one module. In this version the plugin walks and scans the files the run
will consider and reports it in the header; it changes nothing in what pytest imports or collects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from . import __version__
from .options import add_options, is_enabled


@dataclass
class State:
    """Per-run state, kept in config.stash."""

    enabled: bool
    report: object | None = None  # discovery.ScanReport once scanned
    failure: str | None = None  # one-line reason when the core failed (the run goes on as plain pytest)


STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def pytest_configure(config: pytest.Config) -> None:
    config.stash[STATE] = State(enabled=is_enabled(config) and not _is_xdist_worker())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or not state.enabled:
        return
    try:
        from .discovery import scan_for_config

        state.report = scan_for_config(session.config, threads=session.config.getoption("fastcollect_threads"))
    except Exception as exc:  # noqa: BLE001 - the core must never break a run
        state.failure = f"{type(exc).__name__}: {exc}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or not state.enabled:
        return []
    if state.failure is not None:
        return [f"fastcollect {__version__}: scan failed ({state.failure}); running as plain pytest"]
    report = state.report
    if report is None:
        return []
    from .discovery import ScanReport

    assert isinstance(report, ScanReport)
    classes = [str(p) for p in config.getini("python_classes")]
    ms = (report.walk_seconds + report.scan_seconds) * 1000
    line = (
        f"fastcollect {__version__}: scanned {len(report.files)} files, "
        f"{report.tests_found(classes)} test definitions, in {ms:.1f} ms ({report.threads} threads)"
    )
    extra = []
    if report.uncertain:
        extra.append(f"{report.uncertain} need import")
    if report.errors:
        extra.append(f"{len(report.errors)} walk errors")
    if extra:
        line += "; " + ", ".join(extra)
    return [line]
