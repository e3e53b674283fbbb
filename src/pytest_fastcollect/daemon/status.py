"""The daemon's status frame (`pytest --daemon-status`, and the "ping" a client sends before a run).

Fields: the fork server's own (pid, uptime, socket, log, counters, runs going, idle time), its checkpoint's
(state, warm-up time and method, test files imported, modules held, project and installed files, files
changed since), memory (RSS and PSS in KiB from /proc, the last run's peak RSS and PSS, the limit in MiB), and
the level fields its policy adds (level0.Level0.status, level1.Level1.status: "level0", "level1", "rewarm",
and for level 0 the state of the level 1 it builds). control.py renders them.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from typing import Any, Protocol

from . import runclock
from .paths import DaemonFiles
from .procfs import os_threads, pss_kib, rss_kib
from .spec import Spec


class Served(Protocol):
    """What status_frame reads of a fork server (forkserver.ForkServer)."""

    spec: Spec
    files: DaemonFiles
    started: float
    counters: Any
    runs: Any
    last_child_memory: tuple[int, int | None] | None
    policy: Any

    def reap(self) -> None: ...

    def idle_for(self) -> float: ...


def status_frame(server: Served) -> dict[str, Any]:
    """The "status" frame of `server` (module docstring). Reaps first: runs that ended are not "running"."""
    server.reap()
    checkpoint = server.policy.checkpoint
    spec = server.spec
    snap = checkpoint.snapshot
    result = checkpoint.result
    changed = snap.changed_paths() if snap is not None else []
    return {
        "type": "status",
        "pid": os.getpid(),
        "uptime": time.time() - server.started,
        "rootdir": spec.rootdir,
        "key": spec.key,
        "state": checkpoint.state,
        "state_reason": checkpoint.state_reason,
        "started_because": spec.reason,
        "warm_args": spec.warm_args,
        "warm_seconds": round(checkpoint.seconds, 3),
        "warm_method": result.method if result else None,
        "files_digest": result.files_digest if result else "",
        "warm_failed": result.failed if result else 0,
        "warm_exit_code": result.exit_code if result else None,
        "collected": result.imported if result else 0,
        "modules_held": len(sys.modules),
        "project_files": snap.project_file_count if snap else 0,
        "installed_files": len(snap.entries) - snap.project_file_count if snap else 0,
        "changed_files": len(changed),
        "rss_kib": rss_kib(),
        "pss_kib": pss_kib(),
        "last_child_memory": list(server.last_child_memory) if server.last_child_memory else None,
        "last_run": runclock.read(str(server.files.last_run)),
        "max_memory_mib": spec.max_memory_mib,
        "warm_rss_kib": checkpoint.rss_kib,
        "os_threads": os_threads(),
        "running": len(server.runs),
        "idle_timeout": spec.idle_timeout,
        "idle_for": server.idle_for(),
        "log": str(server.files.log),
        "socket": str(server.files.socket),
        "generation": spec.generation,
        "rewarm": "-",
        **asdict(server.counters),
        **server.policy.status(),
    }
