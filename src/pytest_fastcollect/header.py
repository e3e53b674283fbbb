"""The report-header lines of the plugin (shown unless -q / --no-header)."""

from __future__ import annotations

from typing import Any

from . import __version__
from .state import State


def header_lines(state: State, python_classes: list[str]) -> list[str]:
    """One summary line (files, cache use, static test-definition count, wall time of walk + scan in ms,
    threads), then one `fastcollect: ...` line per warning. Empty when there is nothing to report."""
    if state.failure is not None:
        return [f"fastcollect {__version__}: scan failed ({state.failure}); running as plain pytest"]
    report = state.report
    if report is None:
        return []
    ms = (report.walk_seconds + report.scan_seconds) * 1000
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    files = f"{len(report.files)} files"
    stats = report.cache
    if stats is not None:
        files += f" ({stats.trusted + stats.rehashed} from cache, {stats.parsed} parsed)"
    else:
        files += " (no cache)"
    line = (
        f"fastcollect {__version__}: scanned {files}, {report.tests_found(python_classes)} test definitions, "
        f"in {ms:.1f} ms ({threads})"
    )
    extra = []
    if report.uncertain:
        extra.append(f"{report.uncertain} need import")
    if report.errors:
        extra.append(f"{len(report.errors)} walk errors")
    if extra:
        line += "; " + ", ".join(extra)
    warnings = list(state.notes)
    if stats is not None and stats.warning:
        warnings.append(stats.warning)
    return [line, *(f"fastcollect: {w}" for w in warnings)]


def daemon_lines(decision: Any, verbose: int) -> list[str]:
    """A run served by the warm daemon says so (daemon pid, age of the warm state, changed files and the
    modules re-imported because of them); a local run says why it was local, at -v only."""
    served = getattr(decision, "served", None)
    if served is not None and getattr(served, "level", 1) == 0:
        return [
            f"fastcollect: run by the warm daemon from level 0 (pid {served.daemon_pid}: pytest and plugins warm, "
            f"the project imported fresh; {served.note or 'level 1 not ready'})"
        ]
    if served is not None:
        return [
            f"fastcollect: run by the warm daemon (pid {served.daemon_pid}, warm for {served.warm_age_seconds:.0f}s; "
            f"{served.changed} changed files, {served.evicted} modules re-imported"
            f"{'; handed off before pytest was imported' if getattr(served, 'was_early', False) else ''})"
        ]
    note = getattr(decision, "note", None)
    if note and verbose > 0:
        return [f"fastcollect: daemon: {note}"]
    return []


def selection_lines(selection: Any, warning: str, options: Any) -> list[str]:
    """With -k/-m: how many test files stay unimported and why the others are imported; at -v also
    without -k/-m, how many files have a valid recorded collection. Plus one line for a records warning."""
    has_expr = bool(str(getattr(options, "keyword", "") or "").strip() or getattr(options, "markexpr", ""))
    verbose = int(getattr(options, "verbose", 0) or 0)
    lines: list[str] = []
    stale = ", ".join(f"{n} {why}" for why, n in sorted(selection.stale.items()))
    records = f"records valid for {selection.considered} files"
    if selection.unrecorded:
        records += f", {selection.unrecorded} not recorded yet"
    if stale:
        records += f", stale: {stale}"
    if has_expr and not selection.why_not:
        lines.append(
            f"fastcollect: -k/-m: {len(selection.skip)} test files left unimported "
            f"({selection.skipped_items} recorded tests, none selected); {records}"
        )
    elif has_expr:
        lines.append(f"fastcollect: -k/-m: every test file imported ({selection.why_not})")
    elif verbose > 0 and not selection.why_not.startswith(("plugin", "records")):
        lines.append(f"fastcollect: {records}")
    if warning:
        lines.append(f"fastcollect: {warning}")
    return lines
