"""The --daemon-start, --daemon-stop, --daemon-status, --daemon-health and --daemon-reload commands.

Each prints to stdout and returns an exit code; the plugin leaves with it before any conftest is imported.
Exit codes: 0 done / running / healthy; 1 no daemon (status), a check failed (health), or the daemon could
not be started or stopped.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, TextIO

from . import runclock, spawn
from .client import NotServed, Target, ask
from .paths import DaemonFiles, DaemonPathError, socket_dir
from .procfs import lock_holders, parent_of
from .spec import Spec

#: Seconds --daemon-start waits for the warm-up (sympy takes ~15 s on 2 cores).
START_TIMEOUT = 600.0
STOP_TIMEOUT = 15.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _mib(kib: Any) -> str:
    return f"{kib / 1024:.1f} MiB" if isinstance(kib, int) else "unknown"


def _child_memory(value: Any) -> str:
    """[peak RSS KiB (wait4), largest sampled PSS KiB or None] of the last run child that ended."""
    if not isinstance(value, list) or len(value) != 2:
        return "-"
    rss, pss = value
    sampled = f", PSS {_mib(pss)} (largest sampled)" if isinstance(pss, int) else ", PSS not sampled (ran < 1 s)"
    return f"peak RSS {_mib(rss)}{sampled}"


def _memory_limit(status: dict[str, Any]) -> str:
    limit = status.get("max_memory_mib") or 0
    if not limit:
        return "none (ini fastcollect_daemon_max_memory)"
    warm = status.get("warm_rss_kib")
    note = ""
    if isinstance(warm, int) and warm > limit * 1024:
        note = "; the warm state alone is above it: not restarting for it"
    return f"{limit} MiB: an idle daemon above it restarts{note}"


def _level0(info: Any) -> str:
    if not isinstance(info, dict):
        return "-"
    return (f"pid {info.get('pid')}, up {_duration(info.get('uptime') or 0)}: pytest and its built-in plugins "
            f"({info.get('modules')} modules, warm in {info.get('warm_seconds')}s); {info.get('served')} runs "
            f"served from it")


def _level1(info: Any) -> str:
    if not isinstance(info, dict):
        return "none"
    warm = f", warm in {info['warm_seconds']:.2f}s" if isinstance(info.get("warm_seconds"), (int, float)) else ""
    return (f"pid {info.get('pid')}, {info.get('state')}, up {_duration(info.get('uptime') or 0)}{warm}; "
            f"built because {info.get('started_because')}")


def status_rows(status: dict[str, Any]) -> list[tuple[str, str]]:
    """The status reply as (label, value) rows, in reading order."""
    state = status["state"] + (f" ({status['state_reason']})" if status.get("state_reason") else "")
    return [
        ("pid", str(status["pid"])),
        ("uptime", _duration(status["uptime"])),
        ("rootdir", status["rootdir"]),
        ("key", status["key"]),
        ("level 0", _level0(status.get("level0"))),
        ("level 1", _level1(status.get("level1"))),
        ("template", state),
        ("started because", status.get("started_because") or ""),
        ("re-warm", f"{status.get('rewarm') or '-'}; {status.get('generation', 0)} so far"),
        ("warm-up", f"{status['warm_seconds']:.2f}s ({status.get('warm_method')}), {status['collected']} test "
                    f"files imported, {status.get('warm_failed', 0)} failed; args: "
                    f"{' '.join(status['warm_args']) or '(none)'}"),
        ("modules held", f"{status['modules_held']} ({status['project_files']} project files, "
                         f"{status.get('installed_files', 0)} installed module files; "
                         f"{status['changed_files']} changed since warm-up)"),
        ("RSS", _mib(status.get("rss_kib"))),
        ("PSS", _mib(status.get("pss_kib"))),
        ("last run child", _child_memory(status.get("last_child_memory"))),
        ("last run", runclock.describe(status.get("last_run"))),
        ("memory limit", _memory_limit(status)),
        ("threads", str(status.get("os_threads"))),
        ("requests", f"{status['served']} served, {status['refused']} refused, {status['rejected']} rejected, "
                     f"{status['killed']} killed, {status['running']} running"),
        ("last refusal", status.get("last_refusal") or "-"),
        ("last error", status.get("last_error") or "-"),
        ("idle timeout", f"{_duration(status['idle_timeout'])} (idle for {_duration(status['idle_for'])})"
                         if status["idle_timeout"] else "never"),
        ("log", status["log"]),
        ("socket", status["socket"]),
    ]


def print_rows(rows: list[tuple[str, str]], out: TextIO) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}", file=out)


def _pid_of(tgt: Target) -> int | None:
    """The daemon's pid (level 0): the pid file's, if that process holds the key's lock file open; else the
    lock holder none of whose ancestors holds it (a pid file left stale, or pointing at an unrelated
    process, is never signalled). None when no process holds the lock."""
    try:
        pid: int | None = int(tgt.files.pid.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pid = None
    holders = lock_holders(tgt.files)
    if pid in holders:
        return pid
    roots = [p for p in holders if parent_of(p) not in holders]
    return roots[0] if roots else None


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _log_tail(tgt: Target, lines: int = 5) -> list[str]:
    try:
        return tgt.files.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def status(tgt: Target, out: TextIO) -> int:
    try:
        reply = ask(tgt.files, "status")
    except NotServed:
        if spawn.daemon_running(tgt.files):
            print(f"pytest-fastcollect daemon for {tgt.rootdir}: warming up (pid {_pid_of(tgt)})", file=out)
            print(f"  log  {tgt.files.log}", file=out)
            return 0
        print(f"pytest-fastcollect: no daemon for {tgt.rootdir} (key {tgt.key})", file=out)
        return 1
    print(f"pytest-fastcollect daemon for {tgt.rootdir}", file=out)
    print_rows(status_rows(reply), out)
    return 0


def start(tgt: Target, spec: Spec, out: TextIO, timeout: float = START_TIMEOUT) -> int:
    if spawn.daemon_running(tgt.files):
        print("pytest-fastcollect: a daemon is already running for this project", file=out)
        return status(tgt, out)
    spawn.remove_stale_socket(tgt.files)
    t0 = time.monotonic()
    spawn.spawn(spec, tgt.files)

    def ready() -> bool:
        if not spawn.daemon_running(tgt.files):
            return True  # it exited: reported below
        try:  # level 0 answers first; started means level 1 is warm (or gave up: status says why)
            return ask(tgt.files, "ping", timeout=2.0).get("state") != "warming"
        except NotServed:
            return False

    _wait_for(ready, timeout)
    try:
        ask(tgt.files, "ping", timeout=2.0)
    except NotServed as exc:
        print(f"pytest-fastcollect: the daemon did not come up ({exc}); log {tgt.files.log}:", file=out)
        for line in _log_tail(tgt):
            print(f"  {line}", file=out)
        return 1
    print(f"pytest-fastcollect: daemon started and warm in {time.monotonic() - t0:.1f}s", file=out)
    return status(tgt, out)


def project_daemons(tgt: Target) -> list[DaemonFiles]:
    """The files of every other running daemon of this project (same rootdir and interpreter, any set of
    initial paths), from the `<key>.json` each daemon writes while it runs."""
    import json
    import sys

    out: list[DaemonFiles] = []
    for meta in sorted(tgt.files.folder.glob("*.json")):
        key = meta.stem
        if key == tgt.key:
            continue
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("rootdir") == tgt.rootdir and data.get("executable") == sys.executable:
            out.append(DaemonFiles(tgt.files.folder, key))
    return out


def stop_all(tgt: Target, out: TextIO) -> int:
    """A bare `--daemon-stop`: this run's daemon and every other daemon of the project (one per set of
    initial paths: `pytest`, `pytest tests/a.py`, ...). Exit code 1 if any did not stop."""
    code = stop(tgt, out)
    for files in project_daemons(tgt):
        if spawn.daemon_running(files):
            code = max(code, stop(Target(files.key, {}, files, tgt.rootdir), out))
    return code


def stop(tgt: Target, out: TextIO) -> int:
    if not spawn.daemon_running(tgt.files):
        spawn.remove_stale_socket(tgt.files)
        print(f"pytest-fastcollect: no daemon for {tgt.rootdir}", file=out)
        return 0
    pid = _pid_of(tgt)
    try:
        ask(tgt.files, "stop")
    except NotServed:  # still warming (no socket yet): terminate it
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    if not _wait_for(lambda: not spawn.daemon_running(tgt.files), STOP_TIMEOUT):
        print(f"pytest-fastcollect: daemon pid {pid} did not stop within {STOP_TIMEOUT:.0f}s", file=out)
        return 1
    for leftover in (tgt.files.pid, tgt.files.meta):  # (the daemon removes them; one killed meanwhile leaves them)
        try:
            leftover.unlink()
        except OSError:
            pass
    print(f"pytest-fastcollect: daemon pid {pid} stopped", file=out)
    return 0


def reload(tgt: Target, out: TextIO) -> int:
    try:
        ask(tgt.files, "reload")
    except NotServed as exc:
        print(f"pytest-fastcollect: no daemon to reload for {tgt.rootdir} ({exc})", file=out)
        return 1
    print("pytest-fastcollect: the daemon is restarting (runs are served from level 0 until level 1 is warm again)", file=out)
    return 0


def health(tgt: Target, out: TextIO) -> int:
    """Checks, each PASS or FAIL with a detail; exit code 0 only if all pass."""
    checks: list[tuple[bool, str, str]] = []
    try:
        folder = socket_dir(create=False)
        checks.append((True, "socket folder", f"{folder} (0700, ours)"))
    except DaemonPathError as exc:
        checks.append((False, "socket folder", str(exc)))
    running = spawn.daemon_running(tgt.files)
    checks.append((running, "daemon process", f"pid {_pid_of(tgt)}" if running else "not running"))
    reply: dict[str, Any] | None = None
    if running:
        t0 = time.perf_counter()
        try:
            reply = ask(tgt.files, "ping", timeout=5.0)
            checks.append((True, "socket answers", f"{(time.perf_counter() - t0) * 1000:.1f} ms"))
        except NotServed as exc:
            checks.append((False, "socket answers", str(exc)))
    if reply is not None:
        checks.append((reply.get("key") == tgt.key, "key matches this run", reply.get("key", "?")))
        checks.append((reply.get("state") == "ready", "template forkable", reply.get("state", "?")))
        method = reply.get("warm_method")
        checks.append((method in ("imports", "session"), "warm-up", f"{method}, {reply.get('collected')} test files"))
    print(f"pytest-fastcollect daemon health for {tgt.rootdir}", file=out)
    for ok, name, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}", file=out)
    return 0 if all(ok for ok, _, _ in checks) else 1
