"""A pytest plugin loaded into both sides of a parity run (`-p pytest_fastcollect.parity.recorder`).

It writes one JSON document to the path in $FASTCOLLECT_PARITY_RECORD at the end of the session:
  {"items": [node IDs in run order], "collect_errors": [[nodeid, first line]], "deselected": int,
   "reports": [[nodeid, when, outcome, wasxfail]], "exitstatus": int, "fastcollect": {"enabled", "files_scanned", "failure", "served_by_daemon", "daemon_note", "cache"} | null}
Under pytest-xdist only the controller writes; items then come from the workers' collection.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

ENV = "FASTCOLLECT_PARITY_RECORD"


def _served_by_daemon(config: pytest.Config, plugin: Any) -> bool:
    decision = config.stash.get(plugin.DAEMON, None)
    return getattr(decision, "served", None) is not None

def _daemon_note(config: pytest.Config, plugin: Any) -> str | None:
    """How the run was served ("served from level N", with "; handed off before pytest was imported" for
    an early hand-off), or the run's one daemon line shown at -v (why it was not served), or None."""
    decision = config.stash.get(plugin.DAEMON, None)
    served = getattr(decision, "served", None)
    if served is not None:
        early = "; handed off before pytest was imported" if getattr(served, "was_early", False) else ""
        return f"served from level {getattr(served, 'level', 1)}{early}"
    return getattr(decision, "note", None)


def _skipped_files(config: pytest.Config, plugin: Any) -> int | None:
    """Test files the plugin left unimported under -k/-m in this run (None: no selection was made)."""
    run = config.stash.get(plugin.RECORDS, None) if hasattr(plugin, "RECORDS") else None
    if run is None or not run.prepared:
        return None
    return len(run.selection.skip)


_data: dict[str, Any] = {
    "items": [],
    "collect_errors": [],
    "deselected": 0,
    "reports": [],
    "exitstatus": None,
    "fastcollect": None,
}


def pytest_configure(config: pytest.Config) -> None:
    # Start empty in every session (a process may hold this module from an earlier one, e.g. a daemon).
    _data.update(items=[], collect_errors=[], deselected=0, reports=[], exitstatus=None, fastcollect=None)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        text = str(report.longrepr).strip().splitlines()
        _data["collect_errors"].append([report.nodeid, text[-1] if text else ""])


def pytest_deselected(items: list[pytest.Item]) -> None:
    _data["deselected"] += len(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.items:
        _data["items"] = [item.nodeid for item in session.items]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    if not _data["items"]:
        _data["items"] = list(ids)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _data["reports"].append([report.nodeid, report.when, report.outcome, bool(getattr(report, "wasxfail", False))])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config):
        return
    path = os.environ.get(ENV)
    if not path:
        return
    _data["exitstatus"] = int(exitstatus)
    plugin = config.pluginmanager.get_plugin("fastcollect")
    if plugin is not None:
        state = config.stash.get(plugin.STATE, None)
        report = getattr(state, "report", None) if state is not None else None
        _data["fastcollect"] = {
            "enabled": bool(state and state.enabled),
            "files_scanned": len(report.files) if report is not None else None,
            "failure": getattr(state, "failure", None),
            "served_by_daemon": _served_by_daemon(config, plugin),
            "daemon_note": _daemon_note(config, plugin),
            "skipped_files": _skipped_files(config, plugin),
        }
        stats = getattr(report, "cache", None) if report is not None else None
        if stats is not None:
            _data["fastcollect"]["cache"] = {
                "trusted": stats.trusted, "rehashed": stats.rehashed, "parsed": stats.parsed,
                "warning": stats.warning,
            }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_data, fh)
