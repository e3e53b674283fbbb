"""Per-run state of the plugin, kept in `config.stash[STATE]`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class State:
    """`job` is a discovery.ScanJob while the background scan runs; `report` its discovery.ScanReport once
    joined; `failure` the one-line reason when the core failed (the run then goes on as plain pytest);
    `notes` one-line warnings for the report header."""

    enabled: bool
    job: Any = None
    report: Any = None
    failure: str | None = None
    notes: list[str] = field(default_factory=list)
    #: cache.CacheLocation the scan uses (None: no cache)
    location: Any = None
    #: an xdist worker whose scan starts in pytest_configure, once workerinput is known
    worker_pending: bool = False
    #: when the plugin started (time.time_ns()), before any conftest or test module was read: the read time
    #: of every fingerprint this run records (fingerprints.py's racy rule)
    started_ns: int = field(default_factory=time.time_ns)

    def finish(self) -> None:
        """Wait for the background scan (if any) and keep its outcome. Idempotent."""
        if self.job is not None:
            self.report, failure = self.job.result()
            self.failure = self.failure or failure
            self.job = None


STATE = pytest.StashKey[State]()
#: daemon.session.Decision of this run (set in pytest_load_initial_conftests).
DAEMON = pytest.StashKey[Any]()
