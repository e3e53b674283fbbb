"""pytest hook implementations of pytest-fastcollect (entry point `fastcollect`).

Hooks only: each delegates to one module. In this version the plugin walks and scans the files the run
will consider, on a background thread started before the initial conftests are imported, and reports it in
the header; it changes nothing in what pytest imports or collects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import __version__
from .options import add_options, is_enabled


@dataclass
class State:
    """Per-run state, kept in config.stash."""

    enabled: bool
    job: Any = None  # discovery.ScanJob while scanning
    report: Any = None  # discovery.ScanReport once scanned
    failure: str | None = None  # one-line reason when the core failed (the run goes on as plain pytest)
    notes: list[str] = field(default_factory=list)  # one-line warnings for the header

    def finish(self) -> None:
        """Wait for the background scan (if any) and keep its outcome."""
        if self.job is not None:
            self.report, failure = self.job.result()
            self.failure = self.failure or failure
            self.job = None


STATE = pytest.StashKey[State]()


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for the single header line a failure gets."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def _start(config: pytest.Config, args: list[str], options: Any) -> None:
    informational = bool(getattr(options, "help", False) or getattr(options, "version", False))
    state = State(enabled=is_enabled(config, options) and not _is_xdist_worker() and not informational)
    config.stash[STATE] = state
    if not state.enabled:
        return
    try:
        from . import cache
        from .discovery import start_scan

        location = cache.locate(config, options)
        if location is not None and getattr(options, "fastcollect_cache_clear", False):
            error = cache.clear(location)  # before anything is loaded from it
            if error:
                state.notes.append(f"cache not cleared: {error}")
        threads = max(0, int(getattr(options, "fastcollect_threads", 0) or 0))
        state.job = start_scan(config, args, options, threads=threads, cache=location)
        config.add_cleanup(state.finish)
    except Exception as exc:  # noqa: BLE001 - the core must never break a run
        state.failure = one_line(exc)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    # The earliest point where the ini and the command line are known: the scan then overlaps the import
    # of the initial conftests and of everything they import.
    _start(early_config, list(early_config.known_args_namespace.file_or_dir or []), early_config.known_args_namespace)


def pytest_configure(config: pytest.Config) -> None:
    if STATE not in config.stash:  # plugin registered after the initial conftests (e.g. `-p` in a conftest)
        _start(config, list(config.option.file_or_dir or []), config.option)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or not state.enabled:
        return []
    state.finish()
    if state.failure is not None:
        return [f"fastcollect {__version__}: scan failed ({state.failure}); running as plain pytest"]
    report = state.report
    if report is None:
        return []
    classes = [str(p) for p in config.getini("python_classes")]
    ms = (report.walk_seconds + report.scan_seconds) * 1000
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    files = f"{len(report.files)} files"
    stats = report.cache
    if stats is not None:
        files += f" ({stats.trusted + stats.rehashed} from cache, {stats.parsed} parsed)"
    else:
        files += " (no cache)"
    line = (
        f"fastcollect {__version__}: scanned {files}, {report.tests_found(classes)} test definitions, "
        f"in {ms:.1f} ms ({threads})"
    )
    extra = []
    if report.uncertain:
        extra.append(f"{report.uncertain} need import")
    if report.errors:
        extra.append(f"{len(report.errors)} walk errors")
    if extra:
        line += "; " + ", ".join(extra)
    lines = [line]
    warnings = list(state.notes)
    if stats is not None and stats.warning:
        warnings.append(stats.warning)
    lines.extend(f"fastcollect: {w}" for w in warnings)
    return lines


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.finish()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.finish()  # never leave a scanning thread behind (a later fork must not inherit it)
