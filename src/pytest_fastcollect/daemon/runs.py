"""The runs a fork server has forked and not reaped yet, and the one place their exit status is told to
their clients.

A run child closes its own connection once it has said "started"; the fork server keeps its end only to
notice a client that went away (its run is then terminated: SIGTERM to the run's process group, SIGKILL
KILL_GRACE seconds later) and to send the exit status it reaps: {"type": "exit", "code": N}, plus
"signal": S for a run killed by a signal (code 128 + S; the client then dies by S itself).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator

from . import protocol

log = logging.getLogger("pytest_fastcollect.daemon")

#: Seconds between SIGTERM and SIGKILL for the run of a client that went away.
KILL_GRACE = 5.0


@dataclass
class Run:
    """A forked run: its pid, the connection to its client (None once the client is gone or done), when it
    started (monotonic), when its client went away, and the largest PSS (KiB) sampled while it ran."""

    pid: int
    conn: socket.socket | None
    started: float
    client_gone_at: float | None = None
    pss_kib: int | None = None


def exit_message(status: int) -> dict[str, Any]:
    """The "exit" frame for a wait status (os.waitpid): the exit code, or 128 + the signal and the signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"type": "exit", "code": 128 + sig, "signal": sig}
    return {"type": "exit", "code": os.waitstatus_to_exitcode(status)}


def signal_group(pid: int, sig: int) -> None:
    """`sig` to the process group `pid` leads (a run), else to the process."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class RunTable:
    """The runs by pid (see the module docstring). Knows nothing of levels or requests."""

    def __init__(self) -> None:
        self.runs: dict[int, Run] = {}

    def __len__(self) -> int:
        return len(self.runs)

    def __bool__(self) -> bool:
        return bool(self.runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(list(self.runs.values()))

    def __contains__(self, pid: object) -> bool:
        return pid in self.runs

    def add(self, pid: int, conn: socket.socket | None) -> Run:
        run = self.runs[pid] = Run(pid, conn, time.monotonic())
        return run

    def connections(self) -> list[socket.socket]:
        return [r.conn for r in self.runs.values() if r.conn is not None]

    def owns(self, conn: object) -> bool:
        return any(r.conn is conn for r in self.runs.values())

    def client_event(self, conn: socket.socket) -> None:
        """`conn` (a run's client) is readable: it went away (EOF: terminate its run) or said something (an
        older client's "done": stop watching; whatever the run left behind is not ours to kill)."""
        run = next((r for r in self.runs.values() if r.conn is conn), None)
        try:
            conn.setblocking(False)
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if run is not None:
            run.conn = None
            if not data:
                log.info("client of pid %d went away: terminating its run", run.pid)
                run.client_gone_at = time.monotonic()
                signal_group(run.pid, signal.SIGTERM)
        conn.close()

    def escalate(self, now: float | None = None) -> None:
        """SIGKILL the runs whose client went away more than KILL_GRACE seconds ago."""
        now = time.monotonic() if now is None else now
        for run in self.runs.values():
            if run.client_gone_at is not None and now - run.client_gone_at > KILL_GRACE:
                signal_group(run.pid, signal.SIGKILL)

    def ended(self, pid: int, status: int) -> Run | None:
        """Run `pid` was reaped with `status`: tell its client (exit_message) and forget it. None if `pid`
        is not a run (another child of the server)."""
        run = self.runs.pop(pid, None)
        if run is None:
            return None
        log.info("run pid %d ended (status %d) after %.3fs", pid, status, time.monotonic() - run.started)
        if run.conn is not None:
            try:
                run.conn.setblocking(True)
                run.conn.settimeout(1.0)
                protocol.send(run.conn, exit_message(status))
            except OSError:
                pass
            run.conn.close()
            run.conn = None
        return run

    def close_connections(self) -> None:
        for run in self.runs.values():
            if run.conn is not None:
                run.conn.close()
                run.conn = None
