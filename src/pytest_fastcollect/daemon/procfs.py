"""What /proc says about processes (Linux): a process's parent and state, which processes hold a daemon's
lock file, and memory (RSS, PSS) and thread counts for the daemon's status.

Used to verify a pid before signalling it: a pid file can be stale, or name a pid reused by an unrelated
process (`--daemon-stop` once killed a `sleep` that way).
"""

from __future__ import annotations

import os
import threading

from .paths import DaemonFiles


def parent_of(pid: int) -> int | None:
    """The parent pid of `pid` (/proc/PID/stat), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def process_state(pid: int) -> str | None:
    """The state letter of `pid` (/proc/PID/stat: R, S, D, T stopped, t traced, Z zombie, ...), None if it
    is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def lock_holders(files: DaemonFiles) -> list[int]:
    """Pids of this user's processes that hold the key's lock file open (the daemon's levels: level 0 and
    its level-1 templates), found through /proc/PID/fd; ascending."""
    try:
        lock = os.stat(files.lock)
    except OSError:
        return []
    out: list[int] = []
    uid = os.getuid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fd_dir = f"/proc/{entry.name}/fd"
            for fd in os.listdir(fd_dir):
                try:
                    st = os.stat(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (lock.st_dev, lock.st_ino):
                    out.append(int(entry.name))
                    break
        except OSError:
            continue
    return sorted(out)


def rss_kib() -> int | None:
    """This process's resident set size (KiB) from /proc/self/status, else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def pss_kib(pid: int | str = "self") -> int | None:
    """Proportional set size (KiB) of a process from /proc/PID/smaps_rollup (Linux >= 4.14), else None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def os_threads() -> int:
    """Threads of this process (/proc/self/task), including native ones Python does not know."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()
