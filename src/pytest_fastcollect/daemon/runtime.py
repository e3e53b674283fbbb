"""Which role this interpreter plays for the daemon: a normal pytest run, the template, or a child forked
from it (a run, or an xdist worker: daemon/worker.py).

Kept as module globals, not environment variables: a run child replaces os.environ with the client's, and
the client's environment must not carry daemon state into the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: "local" (a normal pytest process), "template" (the daemon while it warms and serves) or "child"
#: (a run, or an xdist worker, forked from the template for one client).
ROLE = "local"


@dataclass
class ServedRun:
    """What a child knows about how it was served: for the report header, and, for a run that becomes an
    xdist controller, the daemon its workers are forked from (`socket` path and `key`). `worker`: this child
    is an xdist worker (its session is the worker's, not a served run's)."""

    daemon_pid: int
    warm_age_seconds: float
    evicted: int
    changed: int
    socket: str = ""
    key: str = ""
    worker: bool = False
    #: 1: forked from the warm project (level 1); 0: from level 0 (pytest and plugins; `note` says why)
    level: int = 1
    note: str = ""
    #: served from level 0 because a tool measures from its start: its xdist workers start cold
    fresh: bool = False
    #: an early hand-off (../early.py) still to be decided: its hold.EarlyHold; None once decided, or not early
    early: Any = None
    #: an early hand-off, served (the header says so)
    was_early: bool = False


#: Set in a run child before pytest's main runs.
SERVED: ServedRun | None = None


def set_role(role: str) -> None:
    global ROLE
    ROLE = role


def set_served(info: ServedRun) -> None:
    global SERVED
    SERVED = info


#: The daemon process's signal dispositions when it started (signal number -> handler), before it set any of
#: its own: a run child may restore a Python handler the caller has too (e.g. one a sitecustomize installs).
STARTUP_SIGNALS: dict[int, Any] = {}


def record_startup_signals() -> None:
    import signal

    for sig in signal.valid_signals():
        try:
            STARTUP_SIGNALS[int(sig)] = signal.getsignal(sig)
        except (OSError, ValueError):
            pass


#: replay.Replayer of a run child (import-time warnings of warm test modules), else None.
REPLAYER: Any = None


def set_replayer(replayer: Any) -> None:
    global REPLAYER
    REPLAYER = replayer


def claim() -> tuple[ServedRun | None, Any]:
    """(SERVED, REPLAYER) for the first pytest config of a run child, then (None, None): a pytest.main()
    that a test calls in the same process is not the run the daemon served."""
    global SERVED, REPLAYER
    out = (SERVED, REPLAYER)
    SERVED = None
    REPLAYER = None
    return out
