"""The template (level 1): the process that warms the project once and forks a child per run.

Life: level 0 (level0.py: `python -m pytest_fastcollect.daemon serve SPEC`, started detached by spawn.py,
holding the key's lock file) forks it -> run_level1(): warm(): pytest's configuration for the project's
arguments, then every test file imported the way pytest's collector imports it, so conftests and test
modules go through pytest's assertion rewriting -> a freshness Snapshot -> take the socket over (bind
`<key>.next`, rename it over `<key>.sock`) -> serve() until stopped, idle for `idle_timeout` seconds, or
replaced by a level 1 that level 0 built (a re-warm after edits, or a rebuild after a change it cannot
serve: it hands such a run to level 0 with the client's fds).

One thread, one select() loop. A run request is answered by fork(): the child serves it (child.py) and
reports its own exit code, so a run finishes even if the template dies. The template keeps its copy of the
connection only to notice a client that went away (its run is then terminated) and to report a child killed
by a signal. Malformed requests are rejected and logged; the loop goes on. Level 0 (level0.Base) is a
Template too, with an empty warm state: the same loop, runs, status and socket hand-over.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from dataclasses import asdict, dataclass, replace
from logging.handlers import RotatingFileHandler
from typing import Any

from . import channel, protocol, runtime
from ..environment import config_candidates
from ..fingerprints import RACY_MARGIN_NS
from .freshness import Plan, Snapshot, held_modules
from .paths import DaemonFiles
from .listener import Listener
from .procfs import parent_of
from .runs import RunTable
from .spec import Spec, serve_argv
from .rngstate import SeedTracker
from .warmup import WarmResult, warm_imports, warm_session

log = logging.getLogger("pytest_fastcollect.daemon")

#: Why an xdist worker is forked from level 0, not from the warm project: xdist sets PYTEST_XDIST_WORKER and
#: friends in a worker's environment, and a module may read them at import (a `skipif` on them): the
#: template imported the project without them (found by scripts/plugin_matrix.py, pytest-timeout row).
WORKER_FRESH = "xdist worker: the project is imported with the worker's environment"
#: Seconds a client has to send its request after connecting.
REQUEST_DEADLINE = 5.0
#: Connections whose request is still arriving, at most (each holds an fd and, once a run request arrived,
#: the client's stdio fds).
MAX_PENDING = 64
#: Warm-ups in a row (level 0 re-executions, level-1 builds) for files that changed during the warm-up before serving anyway
#: (dirty modules are then re-imported by every run; a dirty conftest or config file refuses runs).
MAX_REWARMS = 3
#: Seconds without a run, after a served run found changed project files, before level 0 is asked for a
#: successor template that warms up with the new code (the re-warm; see Template._maybe_rewarm).
REWARM_DEBOUNCE = 1.0


@dataclass
class Counters:
    served: int = 0
    refused: int = 0
    rejected: int = 0
    killed: int = 0
    last_error: str | None = None
    last_refusal: str | None = None


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _pss_kib(pid: int | str = "self") -> int | None:
    """Proportional set size (KiB) of a process from /proc/PID/smaps_rollup (Linux >= 4.14), else None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def memory_restart_reason(rss_kib: int | None, warm_rss_kib: int | None, limit_mib: int) -> str | None:
    """Why an idle template restarts for memory, or None: over `limit_mib` (0 = no limit) and grown by more
    than 10% since its warm-up ended. A template whose warm state alone is over the limit serves on:
    restarting would build the same state again."""
    if limit_mib <= 0 or rss_kib is None or rss_kib <= limit_mib * 1024:
        return None
    if warm_rss_kib is not None and rss_kib <= warm_rss_kib * 1.1:
        return None
    return f"memory limit: RSS {rss_kib / 1024:.0f} MiB > {limit_mib} MiB"


def _os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class Template:
    """Level 1: the template that warms the project (conftests, test modules) and forks a child per run. It
    is forked from level 0 (level0.Base) and talks to it over `channel` (a socketpair): it hands a run it
    cannot serve to level 0 ("forward"), asks for a rebuild or a background re-warm, relays stop and reload,
    and shows level 0's state in its status."""

    #: 1 for the project's template, 0 for level0.Base
    level = 1

    def __init__(self, spec: Spec, link: socket.socket | None = None) -> None:
        self.spec = spec
        #: the socketpair to level 0 (channel.py's messages), None for level 0 itself
        self.channel = link
        self.files = DaemonFiles(Path(spec.folder), spec.key)
        self.started = time.time()
        self.state = "warming"
        self.state_reason = ""
        self.warm_seconds = 0.0
        self.warm_exit_code: int | None = None
        self.warm_result: WarmResult | None = None
        self.collected = 0
        self.snapshot: Snapshot | None = None
        self.warnings_filters: list[Any] = []
        self.sys_path_added: list[str] = []
        self.counters = Counters()
        self.runs = RunTable()
        self.listener: Listener | None = None
        self.stopping = False
        self.reexec_reason: str | None = None
        self.next_digest: str | None = None
        self.last_activity = time.monotonic()
        #: why a re-warm is due (a served run found changed files), None if none is
        self.rewarm_due: str | None = None
        #: when a run was last going (monotonic): the re-warm's debounce counts from there
        self.last_run_at = time.monotonic()
        #: when this template asked level 0 for a re-warm or a rebuild (monotonic), None if it did not
        self.asked_rebuild: float | None = None
        #: set by SIGUSR1 from the successor: stop accepting, leave when the running runs are done
        self.handing_over = False
        #: RSS (KiB) when the warm-up ended; the last run child's peak RSS (wait4) and largest sampled PSS
        self.warm_rss_kib: int | None = None
        self.last_child_memory: tuple[int, int | None] | None = None
        self.memory_checked = 0.0
        #: level 0's snapshot (level 1 only): the files of modules level 0 imported keep level 0's
        #: fingerprints, taken when those modules were loaded (an edit before this warm-up is a change)
        self.inherited: Snapshot | None = None
        #: connections whose request is still arriving (see _accept)
        self.pending: dict[socket.socket, protocol.FrameReader] = {}
        #: explicit seeding of the global random generators during the warm-up (rngstate.py)
        self.rng = SeedTracker()
        #: the SIGCHLD self-pipe (read end, write end) while serving
        self.wakeup: tuple[int, int] | None = None

    # ---- warm-up ----------------------------------------------------------------------------------------
    def warm(self) -> None:
        import pytest

        os.chdir(self.spec.cwd)
        pre_path = list(sys.path)
        pre_filters = list(warnings.filters)
        pre_modules = set(sys.modules)
        started_ns = time.time_ns()
        t0 = time.perf_counter()
        args = [
            *self.spec.warm_args,
            "-p",
            "no:fastcollect",
            "-o",
            f"cache_dir={self.files.cache_dir}",
        ]
        log.info("warming: %s (cwd %s)", " ".join(args), self.spec.cwd)
        result: WarmResult | None = None
        self.rng.start()
        try:
            try:
                result = warm_imports(args)
            except (AttributeError, TypeError, ImportError) as exc:
                log.warning("import-only warm-up unavailable (%s): using a --collect-only session", exc)
                result = warm_session(args)
        except BaseException as exc:  # noqa: BLE001 - a failed warm-up still serves (children re-import)
            self.counters.last_error = f"warm-up raised {type(exc).__name__}: {exc}"
            log.exception("warm-up raised")
        self.rng.finish()
        self.warm_seconds = time.perf_counter() - t0
        if result is None:
            result = WarmResult("failed")
        self.warm_result = result
        self.collected = result.imported
        self.warm_exit_code = result.exit_code
        self.warnings_filters = pre_filters
        warnings.filters[:] = pre_filters
        self.sys_path_added = [p for p in sys.path if p not in pre_path]
        configure_modules = result.configure_modules - pre_modules
        self.snapshot = Snapshot(
            self.spec.rootdir,
            sys.modules,
            configure_modules,
            config_candidates(self.spec.rootdir, self.spec.cwd, result.inipath),
            started_ns,
            [os.path.abspath(p or ".") for p in sys.path],
            test_files=list(result.test_modules),
            inherited=self.inherited,
            edges=held_modules(sys.modules, result.log.events if result.log is not None else None),
        )
        if self.snapshot.dirty and self.spec.rewarms < MAX_REWARMS:
            # Files written while (or just before) they were imported: what the template holds may be older
            # than the file. Warm again once they are older than the margin (the next warm-up sees them
            # settled); the cap keeps a file that changes all the time from looping forever.
            newest = max(max(self.snapshot.entries[p].fp.mtime_ns, self.snapshot.entries[p].fp.ctime_ns) for p in self.snapshot.dirty)
            time.sleep(max(0.0, (newest + RACY_MARGIN_NS - time.time_ns()) / 1e9))
            self.reexec_reason = f"{len(self.snapshot.dirty)} files changed during the warm-up"
            return
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if result.method == "imports" and self.spec.files_digest and result.files_digest != self.spec.files_digest:
            # the warm-up walked other test files than the run that started it: serving would give runs other
            # imports than a plain run; no rebuild loop either: level 0 serves runs until one finds other files
            self.state = "mismatch"
            self.state_reason = "the warm-up found other test files than its starter's run"
        elif alive:
            self.state, self.state_reason = "not forkable", f"threads alive after warming: {', '.join(alive)}"
        else:
            self.state = "ready"
        log.info(
            "warm in %.2fs (%s): %d test files imported, %d failed, %d modules held (%d project files), state %s %s",
            self.warm_seconds,
            result.method,
            result.imported,
            result.failed,
            len(sys.modules),
            self.snapshot.project_file_count,
            self.state,
            self.state_reason,
        )
        gc.collect()
        gc.freeze()  # warm objects are never collected: fewer copy-on-write pages in the children
        self.warm_rss_kib = _rss_kib()

    # ---- socket -----------------------------------------------------------------------------------------
    def bind(self, handover: bool) -> None:
        """Listen on the key's socket (listener.Listener.bind: taking it over atomically with `handover`)."""
        self.listener = Listener.bind(self.files, handover, before_rename=self._carry_counters)
        log.info("listening on %s", self.files.socket)

    def _carry_counters(self) -> None:
        """A successor continues its predecessor's request counters (status counts since the daemon started,
        across re-warms): asked just before the socket changes hands."""
        from .client import NotServed, ask

        try:
            prior = ask(self.files, "status", timeout=2.0)
        except NotServed:
            return
        for name in ("served", "refused", "rejected", "killed"):
            value = prior.get(name)
            if isinstance(value, int):
                setattr(self.counters, name, getattr(self.counters, name) + value)

    def drop_pending(self) -> None:
        """Close the connections whose request never arrived (leaving the loop)."""
        for conn, reader in list(self.pending.items()):
            reader.close()
            conn.close()
        self.pending.clear()

    def close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    # ---- status -----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        self._reap()  # runs that ended since the last loop turn are not "running"
        snap = self.snapshot
        changed = snap.changed_paths() if snap is not None else []
        return {
            "type": "status",
            "pid": os.getpid(),
            "uptime": time.time() - self.started,
            "rootdir": self.spec.rootdir,
            "key": self.spec.key,
            "state": self.state,
            "state_reason": self.state_reason,
            "started_because": self.spec.reason,
            "warm_args": self.spec.warm_args,
            "warm_seconds": round(self.warm_seconds, 3),
            "warm_method": self.warm_result.method if self.warm_result else None,
            "files_digest": self.warm_result.files_digest if self.warm_result else "",
            "warm_failed": self.warm_result.failed if self.warm_result else 0,
            "warm_exit_code": self.warm_exit_code,
            "collected": self.collected,
            "modules_held": len(sys.modules),
            "project_files": snap.project_file_count if snap else 0,
            "installed_files": len(snap.entries) - snap.project_file_count if snap else 0,
            "changed_files": len(changed),
            "rss_kib": _rss_kib(),
            "pss_kib": _pss_kib(),
            "last_child_memory": list(self.last_child_memory) if self.last_child_memory else None,
            "max_memory_mib": self.spec.max_memory_mib,
            "warm_rss_kib": self.warm_rss_kib,
            "os_threads": _os_threads(),
            "running": len(self.runs),
            "idle_timeout": self.spec.idle_timeout,
            "idle_for": time.monotonic() - self.last_activity if not self.runs else 0.0,
            "log": str(self.files.log),
            "socket": str(self.files.socket),
            "generation": self.spec.generation,
            "rewarm": f"due: {self.rewarm_due}" if self.rewarm_due else "-",
            **asdict(self.counters),
            **self._levels(),
        }

    def _levels(self) -> dict[str, Any]:
        """Status fields of both levels: "pid" is the daemon's (level 0: the pid file's), "level0" and "level1"
        describe each (level 0 is asked over the channel; its build of a successor shows as the re-warm)."""
        mine = {"pid": os.getpid(), "state": self.state, "uptime": time.time() - self.started,
                "started_because": self.spec.reason, "warm_seconds": round(self.warm_seconds, 3)}
        out: dict[str, Any] = {"level1": mine}
        base: dict[str, Any] | None = None
        if self.channel is not None:
            try:
                self.channel.settimeout(2.0)
                protocol.send(self.channel, channel.Status().frame())
                base, _ = protocol.recv(self.channel, deadline=time.monotonic() + 2.0)
            except (OSError, EOFError, protocol.ProtocolError) as exc:
                log.warning("level 0 did not answer a status request: %s", exc)
        if base is not None:
            out["pid"] = base.get("pid")
            out["level0"] = base.get("level0")
            if base.get("building"):
                out["rewarm"] = base["building"]
            elif base.get("last_build_failed"):
                out["rewarm"] = base["last_build_failed"]
        return out

    # ---- loop -------------------------------------------------------------------------------------------
    def _install_wakeup(self) -> None:
        """A self-pipe that SIGCHLD writes to (signal.set_wakeup_fd, as CPython's forkserver does): the loop
        wakes when a run ends, so its client gets the exit code at once, not at the next select timeout."""
        self.close_wakeup()
        self.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _on_sigchld)

    def close_wakeup(self) -> None:
        """Forget the SIGCHLD self-pipe (also in a forked level 1 or run child, which inherit it)."""
        signal.set_wakeup_fd(-1)
        for fd in self.wakeup or ():
            try:
                os.close(fd)
            except OSError:
                pass
        self.wakeup = None

    def _drain_wakeup(self) -> None:
        try:
            while self.wakeup is not None and os.read(self.wakeup[0], 512):
                pass
        except BlockingIOError:
            pass

    def serve(self) -> None:
        assert self.listener is not None
        self._install_wakeup()
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_handover)
        while not self.stopping and self.reexec_reason is None:
            if self.handing_over:
                # the path is the successor's now: serve what connected before the rename, then close ours
                while self.listener is not None and select.select([self.listener], [], [], 0)[0]:
                    self._accept()
                self.close_listener()
                self._reap()
                if self._handed_over():
                    break
            watched: list[Any] = [self.listener] if self.listener is not None else []
            watched += self.runs.connections()
            watched += self._channels()
            watched += list(self.pending)
            if self.wakeup is not None:
                watched.append(self.wakeup[0])
            try:
                readable, _, _ = select.select(watched, [], [], 0.25)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    log.error("select: %s", exc)
                    readable = []
                else:
                    raise
            for sock in readable:
                if self.wakeup is not None and sock == self.wakeup[0]:
                    self._drain_wakeup()
                elif sock is self.listener:
                    self._accept()
                elif sock in self.pending:
                    self._pending_event(sock)
                elif self.runs.owns(sock):
                    self.runs.client_event(sock)
                else:
                    self._channel_event(sock)
            self._reap()
            self.runs.escalate()
            self._expire_pending()
            self._maybe_rewarm()
            self._watch_memory()
            if self.reexec_reason is not None and self.channel is not None:
                self._ask_rebuild(self.reexec_reason)
            if self.runs:
                self.last_activity = self.last_run_at = time.monotonic()
            elif self._idle():
                log.info("idle for %.0fs: exiting", self.spec.idle_timeout)
                self.tell(channel.Stop("idle"))
                break
        self.drop_pending()
        self.close_listener()

    def _idle(self) -> bool:
        return self.spec.idle_timeout > 0 and time.monotonic() - self.last_activity > self.spec.idle_timeout

    def _handed_over(self) -> bool:
        """After a successor took the socket: True to leave the loop (level 1: once its runs are done and the
        requests that connected before the hand-over have arrived)."""
        if self.runs or self.pending:
            return False
        log.info("handed over to the successor template: exiting")
        return True

    def _channels(self) -> list[socket.socket]:
        return [self.channel] if self.channel is not None else []

    def _channel_event(self, sock: socket.socket) -> None:
        """Level 0 closed its end (it exited): nobody can rebuild this template; stop."""
        try:
            sock.setblocking(False)
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:  # a reply that came after its request timed out: discard it
                sock.setblocking(True)
                _, fds = protocol.recv(sock, deadline=time.monotonic() + 1.0, max_fds=1 + protocol.MAX_FDS)
                for fd in fds:
                    os.close(fd)
                return
            except (OSError, EOFError, protocol.ProtocolError):
                pass
        log.warning("level 0 went away: exiting")
        self.channel = None
        self.stopping = True

    def tell(self, message: channel.Message, fds: list[int] | None = None) -> bool:
        """Send `message` (channel.py; and `fds`) to level 0; False if there is no level 0 to tell."""
        if self.channel is None:
            return False
        try:
            self.channel.setblocking(True)
            self.channel.settimeout(5.0)
            protocol.send(self.channel, message.frame(), fds or ())
            return True
        except OSError as exc:
            log.warning("level 0 unreachable (%s)", exc)
            return False

    def _ask_rebuild(self, reason: str, files_digest: str | None = None) -> None:
        """Ask level 0 to take the socket back and build a new level 1 (this one serves until it does)."""
        self.reexec_reason = None
        if self.asked_rebuild is not None:
            return
        self.asked_rebuild = time.monotonic()
        log.info("asking level 0 for a rebuild: %s", reason)
        if files_digest is None:
            files_digest = self.warm_result.files_digest if self.warm_result is not None else self.spec.files_digest
        self.tell(channel.Rebuild(reason, files_digest, asdict(self.counters)))

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_handover(self, signum: int, frame: Any) -> None:
        self.handing_over = True

    # ---- re-warm ----------------------------------------------------------------------------------------
    def _check_files(self) -> None:
        """(At most once a second.) The key's files still ours? A lock file that is gone or replaced (a tmp
        cleaner emptied the socket folder) means another daemon may start for the key: leave. A socket file
        that is gone while this process holds it is bound again, so clients find the daemon."""
        try:
            held = os.fstat(self.spec.lock_fd)
            named = os.stat(self.files.lock)
            same = (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
        except OSError:
            same = False
        if not same:
            log.warning("the lock file %s is gone or replaced: leaving", self.files.lock)
            self.tell(channel.Stop("lock file gone"))
            self.stopping = True
            return
        if self.listener is None or self.handing_over:
            return
        if self.listener.path_gone():
            log.warning("the socket %s was deleted: listening on it again", self.files.socket)
            old, self.listener = self.listener, None
            old.close()
            self.bind(handover=False)

    def _watch_memory(self) -> None:
        """At most once a second: sample the PSS of running children; when idle, restart (re-exec) if the
        template's RSS is over ini fastcollect_daemon_max_memory (memory_restart_reason)."""
        now = time.monotonic()
        if now - self.memory_checked < 1.0:
            return
        self.memory_checked = now
        self._check_files()
        if self.stopping:
            return
        for run in self.runs:
            pss = _pss_kib(run.pid)
            if pss is not None and (run.pss_kib is None or pss > run.pss_kib):
                run.pss_kib = pss
        if self.runs or self.asked_rebuild is not None or self.handing_over or self.level == 0:
            return  # (level 0 holds pytest alone: it is not restarted for memory)
        reason = memory_restart_reason(_rss_kib(), self.warm_rss_kib, self.spec.max_memory_mib)
        if reason is not None:
            log.info("%s: restarting", reason)
            self.reexec_reason = reason

    def _maybe_rewarm(self) -> None:
        """Ask level 0 for a successor once a served run has found changed project files and no run has been
        going for REWARM_DEBOUNCE seconds: a level 1 forked from level 0 warms up with the new code while this
        one keeps serving (its runs evict the changed modules), then takes over, so that the run after an
        edit is as warm as the one before. Not while handing over, after asking once, or not ready."""
        if self.rewarm_due is None or self.asked_rebuild is not None or self.handing_over or self.runs:
            return
        if self.state != "ready" or self.snapshot is None:
            return
        if time.monotonic() - self.last_run_at < REWARM_DEBOUNCE:
            return
        reason, self.rewarm_due = self.rewarm_due, None
        if not self.snapshot.changed_paths():
            return  # changed back since
        self._spawn_successor(f"re-warm: {reason}")

    def _spawn_successor(self, reason: str) -> None:
        """Ask level 0 to fork a successor level 1 that warms while this one serves, then takes over."""
        digest = self.warm_result.files_digest if self.warm_result is not None else self.spec.files_digest
        if self.tell(channel.Rewarm(reason, digest)):
            self.asked_rebuild = time.monotonic()
            log.info("re-warm requested from level 0 (%s)", reason)

    def _accept(self) -> None:
        """Take a connection: check its peer's uid, then read its request as it arrives (`_pending`): a
        connection that sends nothing or half a frame delays no other client (MAX_PENDING at once; the oldest
        is dropped beyond that)."""
        assert self.listener is not None
        accepted = self.listener.accept()
        if accepted is None:
            return
        conn, pid, uid = accepted
        self.last_activity = time.monotonic()
        if uid != os.getuid():
            self._reject(conn, f"refused a connection from uid {uid} (pid {pid})", reply=False)
            return
        conn.setblocking(False)
        if len(self.pending) >= MAX_PENDING:
            oldest = min(self.pending, key=lambda c: self.pending[c].deadline)
            self.pending.pop(oldest).close()
            self._reject(oldest, f"{MAX_PENDING} connections waiting to send: dropped the oldest")
        self.pending[conn] = protocol.FrameReader(conn, time.monotonic() + REQUEST_DEADLINE, protocol.MAX_FDS)
        self._pending_event(conn)

    def _pending_event(self, conn: socket.socket) -> None:
        """Read what a pending connection sent; dispatch its request once complete."""
        reader = self.pending.get(conn)
        if reader is None:
            return
        try:
            got = reader.feed()
        except (protocol.ProtocolError, EOFError, OSError) as exc:
            del self.pending[conn]
            self._reject(conn, f"rejected a request: {exc}", reply=not isinstance(exc, EOFError))
            return
        if got is None:
            return
        del self.pending[conn]
        conn.setblocking(True)
        try:
            self._dispatch(conn, *got)
        except Exception as exc:  # noqa: BLE001 - one bad request never ends the loop
            log.exception("request failed")
            self.counters.last_error = f"request failed: {type(exc).__name__}: {exc}"
            try:
                conn.close()
            except OSError:
                pass

    def pending_fds(self) -> list[int]:
        """fds received on pending connections so far (a forked child must close them: a client's pipe)."""
        return [fd for reader in self.pending.values() for fd in reader.fds]

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for conn in [c for c, r in self.pending.items() if r.expired(now)]:
            self.pending.pop(conn).close()
            self._reject(conn, "rejected a request: read deadline passed")

    def _reject(self, conn: socket.socket, error: str, reply: bool = True) -> None:
        self.counters.rejected += 1
        self.counters.last_error = error
        log.warning(error)
        if reply:
            self._reply_and_close(conn, {"type": "error", "reason": error})
        else:
            conn.close()

    def _dispatch(self, conn: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
        kind = message["type"]
        if kind == "run" or kind == "worker":
            self._run(conn, message, fds, worker=kind == "worker")
            return
        for fd in fds:
            os.close(fd)
        if kind == "status" or kind == "ping":
            self._reply_and_close(conn, self.status())
        elif kind == "stop":
            log.info("stop requested")
            self.tell(channel.Stop("stop requested"))
            self._reply_and_close(conn, {"type": "ok"})
            self.stopping = True
        elif kind == "reload":
            log.info("reload requested")
            self._reply_and_close(conn, {"type": "ok"})
            if not self.tell(channel.Restart("reload requested")):
                self.reexec_reason = "reload requested"
        else:
            self._reject(conn, f"rejected a request of unknown type {kind!r}")

    @staticmethod
    def _reply_and_close(conn: socket.socket, message: dict[str, Any]) -> None:
        try:
            conn.settimeout(2.0)
            protocol.send(conn, message)
        except OSError:
            pass
        conn.close()

    def _refuse(self, conn: socket.socket, fds: list[int], reason: str) -> None:
        for fd in fds:
            os.close(fd)
        self.counters.refused += 1
        self.counters.last_refusal = reason
        log.info("refused a run: %s", reason)
        self._reply_and_close(conn, {"type": "refused", "reason": reason})

    def _run(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool = False) -> None:
        """Fork a child for a "run" request (pytest's console entry point) or a "worker" request (an xdist
        worker: the interpreter arguments execnet gave the launcher, daemon/worker.py), after the same
        checks: well-formed, same key, template ready and fresh (stale modules are evicted in the child)."""
        problem = validate_run(request, len(fds))
        if problem is None and worker:
            from .worker import worker_code

            if worker_code(request["argv"]) is None:
                problem = "worker argv is not [-u] [-B] -c CODE"
        if problem:
            self.counters.rejected += 1
            self.counters.last_error = f"rejected a run request: {problem}"
            log.warning(self.counters.last_error)
            for fd in fds:
                os.close(fd)
            self._reply_and_close(conn, {"type": "error", "reason": problem})
            return
        if request["key"] != self.spec.key:
            self._refuse(conn, fds, "key differs")
            return
        plan = self._plan(conn, request, fds, worker)
        if plan is None:
            return
        self._fork_run(conn, request, fds, worker, plan)

    def _plan(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool) -> Plan | None:
        """The evictions for a run this template can serve, or None once it has handed the run on or
        refused it (a test file added or removed, a stale conftest or config file: level 0 serves it)."""
        fresh = request.get("fresh") or (WORKER_FRESH if worker else None)
        if fresh:
            # a tool in the run measures from its start (coverage): the project must be imported after it
            # started, so level 0 serves it; level 1 stays as it is
            self._forward(conn, request, fds, worker, str(fresh), fresh=True)
            return None
        warm = self.warm_result
        if not worker and self.state == "ready" and warm is not None and warm.method == "imports" and (
            request.get("files_digest") != warm.files_digest
        ):
            # a test file was added or removed since the warm-up: a plain run would import another set of
            # files; level 0 serves it and warms a new level 1 with the same arguments, expecting these files
            self._unusable(conn, request, fds, worker, "test files added or removed since the warm-up",
                           str(request.get("files_digest") or ""))
            return None
        if self.state != "ready" or self.snapshot is None:
            self._refuse(conn, fds, f"template {self.state}: {self.state_reason}")
            return None
        plan = self.snapshot.plan(sys.modules)
        if plan.refuse:
            self._unusable(conn, request, fds, worker, plan.refuse, None)
            return None
        return plan

    def _fork_run(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, plan: Plan) -> None:
        from .child import ChildContext, run

        assert self.snapshot is not None

        others = self.runs.connections()
        ctx = ChildContext(
            close_sockets=[s for s in (self.listener, *others, *self._channels(), *self.pending) if s is not None],
            close_fds=[self.spec.lock_fd, *(self.wakeup or ()), *self.pending_fds()],
            warnings_filters=self.warnings_filters,
            sys_path_added=self.sys_path_added,
            evict=plan.evict,
            changed=len(plan.changed),
            daemon_pid=os.getpid(),
            warm_age=time.time() - self.snapshot.created,
            warm=self.warm_result,
            socket=str(self.files.socket),
            key=self.spec.key,
            worker=worker,
            level=self.level,
            level_note=self._level_note(),
            log_path=str(self.files.log),
            folder=str(self.files.folder),
            rng=self.rng,
            fresh=bool(request.get("fresh")),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": native pools only
            pid = os.fork()
        if pid == 0:
            run(conn, request, fds, ctx)  # never returns
        for fd in fds:
            os.close(fd)  # a pipe reader must see EOF when the child is done, not when the template is
        self.counters.served += 1
        self.runs.add(pid, conn)
        if plan.changed and self.level == 1:
            names = ", ".join(os.path.relpath(p, self.spec.rootdir) for p in plan.changed[:3])
            more = f" and {len(plan.changed) - 3} more" if len(plan.changed) > 3 else ""
            self.rewarm_due = f"{len(plan.changed)} changed file{'s' if len(plan.changed) != 1 else ''} ({names}{more})"
        what = "xdist worker" if worker else " ".join(request["argv"][1:])[:200]
        log.info("run %d: pid %d, level %d, %d changed, %d evicted: %s", self.counters.served, pid, self.level,
                 len(plan.changed), len(plan.evict), what)

    def _level_note(self) -> str:
        return ""

    def _unusable(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, reason: str,
                  files_digest: str | None) -> None:
        """This template cannot serve the run (`reason`): hand it to level 0, which serves it from its own
        state (pytest warm, the project imported fresh) and builds a new level 1 (`files_digest`: the test
        files the next warm-up must find, None for the same). Without a level 0, refuse: the client runs
        locally."""
        if self._forward(conn, request, fds, worker, reason, files_digest=files_digest):
            self.asked_rebuild = self.asked_rebuild or time.monotonic()
        else:
            self.reexec_reason = reason

    def _forward(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, reason: str,
                 files_digest: str | None = None, fresh: bool = False) -> bool:
        """Pass the connection and the client's fds to level 0 ("forward"; `fresh`: level 1 stays, no
        rebuild). False, after refusing the run, when there is no level 0 to take it."""
        message = channel.Forward(reason, files_digest, worker, request, asdict(self.counters), fresh)
        if self.tell(message, [conn.fileno(), *fds]):
            log.info("run handed to level 0: %s", reason)
            if fresh:  # served by this daemon all the same (status counts the daemon's requests)
                self.counters.served += 1
            for fd in fds:
                os.close(fd)
            conn.close()
            return True
        self._refuse(conn, fds, reason)
        return False

    def _reap(self) -> None:
        """Reap every child that ended: a run (runs.RunTable.ended tells its client), else another child of
        this server (_child_ended: level 0's level-1 templates)."""
        while self.runs or self._other_children():
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.runs.ended(pid, status)
            if run is None:
                self._child_ended(pid, status)
                continue
            self.last_child_memory = (int(usage.ru_maxrss), run.pss_kib)
            if os.WIFSIGNALED(status):
                self.counters.killed += 1
            from .child import exit_file

            try:
                os.unlink(exit_file(str(self.files.folder), pid))
            except OSError:
                pass

    def _other_children(self) -> bool:
        """Children besides runs (level 0: its level-1 templates) to reap."""
        return False

    def _child_ended(self, pid: int, status: int) -> None:
        pass

    def stop_children(self) -> None:
        pass

    def reexec(self) -> None:
        """Replace this process with a fresh daemon (same pid, same lock): a cold interpreter warms again."""
        reason = self.reexec_reason or "rebuild"
        log.info("re-executing to rebuild the warm state: %s", reason)
        self.stop_children()
        self.drop_pending()
        self.close_listener()
        self.runs.close_connections()
        logging.shutdown()
        rewarms = self.spec.rewarms + 1 if reason.endswith("during the warm-up of level 0") else 0
        digest = self.next_digest if self.next_digest is not None else self.spec.files_digest
        spec = replace(self.spec, reason=reason, rewarms=rewarms, files_digest=digest, successor_of=0)
        os.set_inheritable(spec.lock_fd, True)
        argv = serve_argv(spec)
        os.execv(argv[0], argv)


def _on_sigchld(signum: int, frame: Any) -> None:
    """SIGCHLD's handler: nothing; the wake-up fd (Template._install_wakeup) is what wakes the loop."""


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate_run(request: dict[str, Any], nfds: int) -> str | None:
    """The reason a run request is malformed, or None. Shape: key str, argv list[str] (non-empty), cwd str
    (absolute), env dict[str, str], sys_path list[str], optional files_digest str, optional fresh str or
    None, process: the caller's process state (procstate.problem checks it, with the number of fds sent)."""
    if not isinstance(request.get("key"), str):
        return "key is not a string"
    if not _is_str_list(request.get("argv")) or not request["argv"]:
        return "argv is not a non-empty list of strings"
    cwd = request.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        return "cwd is not an absolute path"
    env = request.get("env")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return "env is not a dict of strings"
    if not _is_str_list(request.get("sys_path")):
        return "sys_path is not a list of strings"
    if not isinstance(request.get("files_digest", ""), str):
        return "files_digest is not a string"
    if request.get("fresh") is not None and not isinstance(request.get("fresh"), str):
        return "fresh is not a string or null"
    from .procstate import problem

    return problem(request.get("process"), nfds)


def _setup_logging(files: DaemonFiles) -> None:
    handler = RotatingFileHandler(files.log, maxBytes=1 << 20, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run_level1(spec: Spec, link: socket.socket, level0: Snapshot | None = None) -> int:
    """The life of a level-1 template, in a process forked from level 0 (level0.Base.build): warm the
    project, take the socket over from `spec.successor_of` (level 0 or the level 1 it succeeds) and serve.
    One that is not ready never takes over: it tells level 0 why (a warm-up that saw files change asks for
    another build) and exits, and level 0 goes on serving runs itself."""
    runtime.set_role("template")
    template = Template(spec, link)
    template.inherited = level0
    try:
        template.warm()
        if template.reexec_reason is not None:
            template.tell(channel.Rebuild(template.reexec_reason, spec.files_digest, None, spec.rewarms + 1))
            return 0
        if template.state != "ready":
            log.warning("level 1 %s (%s): not taking over", template.state, template.state_reason)
            template.tell(channel.NotReady(template.state, template.state_reason))
            return 1
        template.bind(handover=True)
        # the holder was level 0 (our parent) or the level 1 we succeed (our sibling): not a reused pid
        if spec.successor_of in (os.getppid(),) or parent_of(spec.successor_of) == os.getppid():
            try:
                os.kill(spec.successor_of, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        template.tell(channel.Holding())
        log.info("level 1 pid %d took over from pid %d", os.getpid(), spec.successor_of)
        template.serve()
    except Exception:  # noqa: BLE001
        log.exception("level 1 failed")
        template.close_listener()
        return 1
    log.info("level 1 pid %d exits", os.getpid())
    return 0
