"""The records plugin: the collection hooks of one session's recorded collection (flow.RecordsRun), as a
plugin object registered in pytest_configure when the plugin is active (pytest's pattern:
_pytest/cacheprovider.py LFPlugin, _pytest/stepwise.py). Its state is the RecordsRun it is given.

Hook order: the -k/-m decision is made before the first test file is collected (pytest_collection,
tryfirst); a file left unimported becomes a SkippedModule (pytest_pycollect_makemodule) whose stand-in items
leave the item list before any other pytest_collection_modifyitems implementation sees them and are
reported deselected after (the outermost wrapper); then this run's collection is recorded, and the
database is released before the first test runs.
"""

from __future__ import annotations

import json
from typing import Any, Generator

import pytest

from .flow import RecordsRun


class RecordsPlugin:
    """Registered as NAME by plugin.pytest_configure."""

    NAME = "fastcollect-records"

    def __init__(self, run: RecordsRun) -> None:
        self.run = run

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
        if self.run.needs_decision():
            self.run.prepare()
        return (yield)

    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        # counts the warnings of each test file's collection from here (recording.py)
        self.run.collect_start(collector)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        self.run.collect_end(collector, report)
        return report

    def pytest_pycollect_makemodule(self, module_path: Any, parent: pytest.Collector) -> pytest.Module | None:
        return self.run.make_module(module_path, parent)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        self.run.item_collected(item)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if items:
            self.run.deselected(items)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> Generator[None, None, None]:
        self.run.take_placeholders(items)
        result = yield
        self.run.report_placeholders()
        self.run.record(items)
        self.run.release()
        return result

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # pytest-xdist, worker: hand what this worker collected to the controller (before xdist sends
        # workeroutput); one str: execnet's serializer takes no int beyond 32 bits (mtime_ns)
        workeroutput = getattr(session.config, "workeroutput", None)
        if isinstance(workeroutput, dict):
            payload = self.run.worker_output()
            if payload is not None:
                from .xdist import RECORDS_OUTPUT_KEY

                workeroutput[RECORDS_OUTPUT_KEY] = json.dumps(payload, separators=(",", ":"))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.run.summary_lines():
            terminalreporter.write_line(line, yellow=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.run.close()
