"""The template: the daemon process that warms once and forks a child per run.

Life: `python -m pytest_fastcollect.daemon serve SPEC` (spawn.py starts it detached, holding the key's lock
file) -> warm(): pytest's own collection for the project's arguments with output discarded, so conftests and
test modules are imported through pytest's assertion rewriting -> a freshness Snapshot -> bind the socket ->
serve() until stopped, idle for `idle_timeout` seconds, or re-executed to rebuild its warm state.

One thread, one select() loop. A run request is answered by fork(): the child serves it (child.py) and
reports its own exit code, so a run finishes even if the template dies. The template keeps its copy of the
connection only to notice a client that went away (its run is then terminated) and to report a child killed
by a signal. Malformed requests are rejected and logged; the loop goes on.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import warnings
from pathlib import Path
from dataclasses import asdict, dataclass, field, replace
from logging.handlers import RotatingFileHandler
from typing import Any

from . import protocol, runtime
from .freshness import RACY_MARGIN_NS, Snapshot, config_candidates
from .paths import DaemonFiles
from .warmup import WarmResult, warm_imports, warm_session

log = logging.getLogger("pytest_fastcollect.daemon")

#: Seconds a client has to send its request after connecting.
REQUEST_DEADLINE = 5.0
#: Re-executions in a row for files that changed during the warm-up before the template serves anyway
#: (dirty modules are then re-imported by every run; a dirty conftest or config file refuses runs).
MAX_REWARMS = 3
#: Seconds between SIGTERM and SIGKILL for the run of a client that went away.
KILL_GRACE = 5.0
#: Seconds without a run, after a served run found changed project files, before a successor template is
#: started to warm up with the new code (the re-warm; see Template._maybe_rewarm).
REWARM_DEBOUNCE = 1.0


@dataclass
class Spec:
    """How to start a template: the key and its files' folder, the rootdir, the folder and arguments of the
    warm-up collection, the idle timeout (seconds, 0 = never), and the fd of the held lock file."""

    key: str
    folder: str
    rootdir: str
    cwd: str
    warm_args: list[str]
    idle_timeout: float
    lock_fd: int
    reason: str = "started"
    #: consecutive re-executions because files changed during the warm-up (capped: see Template.warm)
    rewarms: int = 0
    #: client.files_digest of the test files the starter's run would collect: the warm-up must see the same
    files_digest: str = ""
    #: pid of the template this one succeeds (a re-warm): it warms while that one serves, then takes the
    #: socket over (an atomic rename) and tells it to leave (SIGUSR1); 0 for a template started anew
    successor_of: int = 0
    #: re-warms so far in this daemon's line of templates
    generation: int = 0
    #: ini fastcollect_daemon_max_memory: MiB of RSS above which an idle template restarts (0 = no limit)
    max_memory_mib: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        data = json.loads(text)
        return cls(**data)


@dataclass
class Run:
    pid: int
    conn: socket.socket | None
    started: float
    client_gone_at: float | None = None
    pss_kib: int | None = None  # the largest sampled while it ran


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
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
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
        self.runs: dict[int, Run] = {}  # by pid
        self.listener: socket.socket | None = None
        self.socket_inode = -1
        self.stopping = False
        self.reexec_reason: str | None = None
        self.next_digest: str | None = None
        self.last_activity = time.monotonic()
        #: why a re-warm is due (a served run found changed files), None if none is
        self.rewarm_due: str | None = None
        #: when a run was last going (monotonic): the re-warm's debounce counts from there
        self.last_run_at = time.monotonic()
        #: pid and start (monotonic) of the successor template warming now, if any
        self.successor: int | None = None
        self.successor_started = 0.0
        self.last_rewarm: str | None = None
        #: set by SIGUSR1 from the successor: stop accepting, leave when the running runs are done
        self.handing_over = False
        #: RSS (KiB) when the warm-up ended; the last run child's peak RSS (wait4) and largest sampled PSS
        self.warm_rss_kib: int | None = None
        self.last_child_memory: tuple[int, int | None] | None = None
        self.memory_checked = 0.0

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
        try:
            try:
                result = warm_imports(args)
            except (AttributeError, TypeError, ImportError) as exc:
                log.warning("import-only warm-up unavailable (%s): using a --collect-only session", exc)
                result = warm_session(args)
        except BaseException as exc:  # noqa: BLE001 - a failed warm-up still serves (children re-import)
            self.counters.last_error = f"warm-up raised {type(exc).__name__}: {exc}"
            log.exception("warm-up raised")
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
        )
        if self.snapshot.dirty and self.spec.rewarms < MAX_REWARMS:
            # Files written while (or just before) they were imported: what the template holds may be older
            # than the file. Warm again once they are older than the margin (the next warm-up sees them
            # settled); the cap keeps a file that changes all the time from looping forever.
            newest = max(max(self.snapshot.entries[p].mtime_ns, self.snapshot.entries[p].ctime_ns) for p in self.snapshot.dirty)
            time.sleep(max(0.0, (newest + RACY_MARGIN_NS - time.time_ns()) / 1e9))
            self.reexec_reason = f"{len(self.snapshot.dirty)} files changed during the warm-up"
            return
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if result.method == "imports" and self.spec.files_digest and result.files_digest != self.spec.files_digest:
            # the warm-up walked other test files than the run that started it: serving would give runs other
            # imports than a plain run; no rebuild loop either: runs are local until a reload
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
    def bind(self) -> None:
        """Listen on the key's socket. A successor (spec.successor_of) binds a name of the same length beside
        it and renames it over the predecessor's: clients always find a socket that answers."""
        path = str(self.files.socket)
        handover = self.spec.successor_of != 0
        bound = path[: -len(".sock")] + ".next" if handover and path.endswith(".sock") else path
        try:
            os.unlink(bound)  # we hold the lock: a socket file left at that name is stale
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(bound)
        finally:
            os.umask(old)
        os.chmod(bound, 0o600)
        listener.listen(64)
        if bound != path:
            self._carry_counters()
            os.rename(bound, path)
        self.socket_inode = os.stat(path).st_ino
        self.listener = listener
        log.info("listening on %s", path)

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

    def close_listener(self) -> None:
        if self.listener is None:
            return
        try:
            if os.stat(self.files.socket).st_ino == self.socket_inode:  # not a successor's socket
                os.unlink(self.files.socket)
        except OSError:
            pass
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
            "rewarm": (
                f"successor pid {self.successor} warming for {time.monotonic() - self.successor_started:.1f}s"
                if self.successor is not None
                else self.last_rewarm or (f"due: {self.rewarm_due}" if self.rewarm_due else "-")
            ),
            **asdict(self.counters),
        }

    # ---- loop -------------------------------------------------------------------------------------------
    def serve(self) -> None:
        assert self.listener is not None
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
                if not self.runs:
                    log.info("handed over to the successor template: exiting")
                    break
            watched: list[Any] = [self.listener] if self.listener is not None else []
            watched += [r.conn for r in self.runs.values() if r.conn is not None]
            try:
                readable, _, _ = select.select(watched, [], [], 0.25)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    log.error("select: %s", exc)
                    readable = []
                else:
                    raise
            for sock in readable:
                if sock is self.listener:
                    self._accept()
                else:
                    self._client_event(sock)
            self._reap()
            self._escalate()
            self._maybe_rewarm()
            self._watch_memory()
            if self.runs:
                self.last_activity = self.last_run_at = time.monotonic()
            elif self.spec.idle_timeout > 0 and time.monotonic() - self.last_activity > self.spec.idle_timeout:
                log.info("idle for %.0fs: exiting", self.spec.idle_timeout)
                break
        self.close_listener()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_handover(self, signum: int, frame: Any) -> None:
        self.handing_over = True

    # ---- re-warm ----------------------------------------------------------------------------------------
    def _watch_memory(self) -> None:
        """At most once a second: sample the PSS of running children; when idle, restart (re-exec) if the
        template's RSS is over ini fastcollect_daemon_max_memory (memory_restart_reason)."""
        now = time.monotonic()
        if now - self.memory_checked < 1.0:
            return
        self.memory_checked = now
        for run in self.runs.values():
            pss = _pss_kib(run.pid)
            if pss is not None and (run.pss_kib is None or pss > run.pss_kib):
                run.pss_kib = pss
        if self.runs or self.successor is not None or self.handing_over:
            return
        reason = memory_restart_reason(_rss_kib(), self.warm_rss_kib, self.spec.max_memory_mib)
        if reason is not None:
            log.info("%s: restarting", reason)
            self.reexec_reason = reason

    def _maybe_rewarm(self) -> None:
        """Start a successor template once a served run has found changed project files and no run has been
        going for REWARM_DEBOUNCE seconds: a fresh interpreter warms up with the new code while this one
        keeps serving (its runs evict the changed modules), then takes over, so that the run after an edit
        is as warm as the one before. Not while handing over, warming a successor already, or not ready."""
        if self.rewarm_due is None or self.successor is not None or self.handing_over or self.runs:
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
        digest = self.warm_result.files_digest if self.warm_result is not None else self.spec.files_digest
        spec = replace(self.spec, reason=reason, rewarms=0, files_digest=digest, successor_of=os.getpid(),
                       generation=self.spec.generation + 1)
        argv = _serve_argv(spec)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - replaced by exec at once
            try:
                os.set_inheritable(spec.lock_fd, True)  # the same lock: one daemon per key, held throughout
                os.execv(argv[0], argv)
            finally:
                os._exit(1)
        self.successor = pid
        self.successor_started = time.monotonic()
        log.info("re-warm: successor template pid %d started (%s)", pid, reason)

    def _successor_ended(self, pid: int, status: int) -> None:
        self.successor = None
        if self.handing_over:
            return  # it took over and is serving: we are leaving
        self.last_rewarm = f"successor pid {pid} ended (status {status}) without taking over; see the log"
        log.warning("re-warm: %s", self.last_rewarm)

    def stop_successor(self) -> None:
        """A template that stops or re-executes takes its warming successor with it."""
        if self.successor is None or self.handing_over:
            return
        try:
            os.kill(self.successor, signal.SIGTERM)
            os.waitpid(self.successor, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.successor = None

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last_activity = time.monotonic()
        conn.setblocking(True)
        try:
            pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != os.getuid():
                self.counters.rejected += 1
                self.counters.last_error = f"refused a connection from uid {uid} (pid {pid})"
                log.warning(self.counters.last_error)
                conn.close()
                return
            message, fds = protocol.recv(conn, deadline=time.monotonic() + REQUEST_DEADLINE, max_fds=protocol.MAX_FDS)
        except (protocol.ProtocolError, EOFError, OSError) as exc:
            self.counters.rejected += 1
            self.counters.last_error = f"rejected a request: {exc}"
            log.warning(self.counters.last_error)
            self._reply_and_close(conn, {"type": "error", "reason": str(exc)})
            return
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
            self._reply_and_close(conn, {"type": "ok"})
            self.stopping = True
        elif kind == "reload":
            log.info("reload requested")
            self._reply_and_close(conn, {"type": "ok"})
            self.reexec_reason = "reload requested"
        else:
            self.counters.rejected += 1
            self.counters.last_error = f"rejected a request of unknown type {kind!r}"
            log.warning(self.counters.last_error)
            self._reply_and_close(conn, {"type": "error", "reason": f"unknown request type {kind!r}"})

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
        warm = self.warm_result
        if not worker and self.state == "ready" and warm is not None and warm.method == "imports" and (
            request.get("files_digest") != warm.files_digest
        ):
            # a test file was added or removed since the warm-up: a plain run would import another set of
            # files; warm again with the same arguments, expecting the files this run sees
            self._refuse(conn, fds, "test files added or removed since the warm-up")
            self.reexec_reason = "test files added or removed"
            self.next_digest = str(request.get("files_digest") or "")
            return
        if self.state != "ready" or self.snapshot is None:
            self._refuse(conn, fds, f"template {self.state}: {self.state_reason}")
            return
        plan = self.snapshot.plan(sys.modules)
        if plan.refuse:
            self._refuse(conn, fds, plan.refuse)
            self.reexec_reason = plan.refuse
            return
        from .child import ChildContext, run

        others = [r.conn for r in self.runs.values() if r.conn is not None]
        assert self.listener is not None
        ctx = ChildContext(
            close_sockets=[self.listener, *others],
            close_fds=[self.spec.lock_fd],
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
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": native pools only
            pid = os.fork()
        if pid == 0:
            run(conn, request, fds, ctx)  # never returns
        for fd in fds:
            os.close(fd)  # a pipe reader must see EOF when the child is done, not when the template is
        self.counters.served += 1
        self.runs[pid] = Run(pid, conn, time.monotonic())
        if plan.changed:
            names = ", ".join(os.path.relpath(p, self.spec.rootdir) for p in plan.changed[:3])
            more = f" and {len(plan.changed) - 3} more" if len(plan.changed) > 3 else ""
            self.rewarm_due = f"{len(plan.changed)} changed file{'s' if len(plan.changed) != 1 else ''} ({names}{more})"
        what = "xdist worker" if worker else " ".join(request["argv"][1:])[:200]
        log.info("run %d: pid %d, %d changed, %d evicted: %s", self.counters.served, pid, len(plan.changed), len(plan.evict), what)

    def _client_event(self, conn: socket.socket) -> None:
        run = next((r for r in self.runs.values() if r.conn is conn), None)
        try:
            conn.setblocking(False)
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            # The client got its exit code and said "done": stop watching (its run is over, whatever the run
            # left behind, e.g. a process a test started on purpose, is not ours to kill).
            if run is not None:
                run.conn = None
            conn.close()
            return
        if run is not None:
            log.info("client of pid %d went away: terminating its run", run.pid)
            run.client_gone_at = time.monotonic()
            _signal_group(run.pid, signal.SIGTERM)
            run.conn = None
        conn.close()

    def _escalate(self) -> None:
        now = time.monotonic()
        for run in self.runs.values():
            if run.client_gone_at is not None and now - run.client_gone_at > KILL_GRACE:
                _signal_group(run.pid, signal.SIGKILL)

    def _reap(self) -> None:
        while self.runs or self.successor is not None:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.successor:
                self._successor_ended(pid, status)
                continue
            run = self.runs.pop(pid, None)
            if run is None:
                continue
            self.last_child_memory = (int(usage.ru_maxrss), run.pss_kib)
            log.info("run pid %d ended (status %d) after %.3fs", pid, status, time.monotonic() - run.started)
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                self.counters.killed += 1
                log.info("run pid %d killed by signal %d", pid, sig)
                message: dict[str, Any] = {"type": "exit", "code": 128 + sig, "signal": sig}
            else:
                # normally the child said "exit" itself; one that left with os._exit() (a test, execnet's
                # worker) did not: its client still gets the status the process ended with
                message = {"type": "exit", "code": os.waitstatus_to_exitcode(status)}
            if run.conn is not None:
                try:
                    run.conn.setblocking(True)
                    run.conn.settimeout(1.0)
                    protocol.send(run.conn, message)
                except OSError:
                    pass
            if run.conn is not None:
                run.conn.close()

    def reexec(self) -> None:
        """Replace this process with a fresh template (same pid, same lock): a cold interpreter re-warms."""
        reason = self.reexec_reason or "rebuild"
        log.info("re-executing to rebuild the warm state: %s", reason)
        self.stop_successor()
        self.close_listener()
        for run in self.runs.values():
            if run.conn is not None:
                run.conn.close()
        logging.shutdown()
        rewarms = self.spec.rewarms + 1 if reason.endswith("during the warm-up") else 0
        digest = self.next_digest if self.next_digest is not None else self.spec.files_digest
        # a successor that never took over still has to; one that serves (or served) has no predecessor
        successor_of = self.spec.successor_of if self.socket_inode == -1 else 0
        spec = replace(self.spec, reason=reason, rewarms=rewarms, files_digest=digest, successor_of=successor_of)
        os.set_inheritable(spec.lock_fd, True)
        argv = _serve_argv(spec)
        os.execv(argv[0], argv)


def _serve_argv(spec: Spec) -> list[str]:
    """The command of a template process for `spec` in a fresh interpreter (re-execution, successor)."""
    from .spawn import interpreter

    return [*interpreter(), "-m", "pytest_fastcollect.daemon", "serve", "--no-detach", spec.to_json()]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate_run(request: dict[str, Any], nfds: int) -> str | None:
    """The reason a run request is malformed, or None. Shape: key str, argv list[str] (non-empty), cwd str
    (absolute), env dict[str, str], sys_path list[str], umask int, stdio list of 3 (dict or None), optional
    files_digest str; exactly 3 fds (stdin, stdout, stderr)."""
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
    if not isinstance(request.get("umask"), int) or not 0 <= request["umask"] <= 0o777:
        return "umask is not an int in 0..0o777"
    stdio = request.get("stdio")
    if not isinstance(stdio, list) or len(stdio) != 3 or not all(s is None or isinstance(s, dict) for s in stdio):
        return "stdio is not a list of 3 objects"
    if not isinstance(request.get("files_digest", ""), str):
        return "files_digest is not a string"
    if nfds != 3:
        return f"{nfds} file descriptors sent, 3 expected"
    return None


def _setup_logging(files: DaemonFiles) -> None:
    handler = RotatingFileHandler(files.log, maxBytes=1 << 20, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def serve_main(spec_json: str) -> int:
    """Entry point of the daemon process (see __main__.py, which has detached it already)."""
    spec = Spec.from_json(spec_json)
    os.umask(0o077)  # the log, pid and cache files are the user's alone (runs get the client's umask)
    runtime.set_role("template")
    template = Template(spec)
    _setup_logging(template.files)
    try:
        fcntl.flock(spec.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already (inherited): re-asserted
    except OSError as exc:
        log.error("lock %s not held (%s): another daemon has it; exiting", template.files.lock, exc)
        return 1
    os.set_inheritable(spec.lock_fd, False)
    if not spec.successor_of:  # a successor's pid is written when it takes over (stop/status read it)
        template.files.pid.write_text(f"{os.getpid()}\n", encoding="ascii")
    log.info("daemon pid %d for %s (key %s): %s", os.getpid(), spec.rootdir, spec.key, spec.reason)
    try:
        template.warm()
        if template.reexec_reason is None:
            if spec.successor_of and template.state != "ready":
                # the predecessor keeps serving (evicting what changed); taking over would refuse every run
                log.warning("re-warm: template %s (%s): not taking over", template.state, template.state_reason)
                return 1
            template.bind()
            if spec.successor_of:
                template.files.pid.write_text(f"{os.getpid()}\n", encoding="ascii")
                if os.getppid() == spec.successor_of:  # still our parent: not a reused pid
                    try:
                        os.kill(spec.successor_of, signal.SIGUSR1)
                    except ProcessLookupError:
                        pass
                log.info("re-warm: took over from pid %d", spec.successor_of)
            template.serve()
    except Exception:  # noqa: BLE001
        log.exception("daemon failed")
        template.close_listener()
        template.stop_successor()
        return 1
    template.stop_successor()
    if template.reexec_reason is not None and not template.stopping:
        template.reexec()
    log.info("daemon pid %d exits", os.getpid())
    return 0
