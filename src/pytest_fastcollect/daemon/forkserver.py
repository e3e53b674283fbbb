"""The fork server: one select() loop that accepts clients on the key's socket and forks a child per run.

It knows nothing of levels. What it forks from is a `Checkpoint` (the warm state: what was imported, the
warnings filters and sys.path entries the warm-up added, the freshness Snapshot), and which runs it serves,
and what else it listens to, is decided by its `Policy` (level0.Level0, level1.Level1), in the manner of
pytest-xdist's scheduler protocol: the server calls the policy, the policy calls back a few server methods
(refuse, run, bind).

Life of a request (protocol.py frames): accept (the peer's uid must be ours; listener.py) -> the request is
read as it arrives (`pending`: a client that sends nothing or half a frame delays nobody; REQUEST_DEADLINE,
MAX_PENDING) -> "status"/"ping", "stop", "reload", or "run"/"worker"/"early" (an early hand-off, ../early.py:
its run child decides whether it serves): validated (validate_run), same key, admitted by the policy (a freshness Plan, or handed on / refused) -> fork: the child serves it (child.py) and
the run table (runs.py) tells the client its exit status when the child is reaped. SIGCHLD wakes the loop
through a self-pipe, as CPython's Lib/multiprocessing/forkserver.py does. Malformed requests are rejected and
logged; the loop goes on.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from . import protocol
from .freshness import Plan, Snapshot
from .listener import Listener
from .paths import DaemonFiles
from .procfs import pss_kib
from .rngstate import SeedTracker
from .runs import RunTable
from .spec import Spec
from .warmup import WarmResult

log = logging.getLogger("pytest_fastcollect.daemon")

#: Seconds a client has to send its request after connecting.
REQUEST_DEADLINE = 5.0
#: Connections whose request is still arriving, at most (each holds an fd and, once a run request arrived,
#: the client's stdio fds).
MAX_PENDING = 64


@dataclass
class Counters:
    """The daemon's request counters (status shows them; a successor level 1 continues its predecessor's)."""

    served: int = 0
    refused: int = 0
    rejected: int = 0
    killed: int = 0
    last_error: str | None = None
    last_refusal: str | None = None


@dataclass
class Checkpoint:
    """The state runs are forked from: `state` "warming", "ready" or why not ("not forkable", "mismatch",
    "failed"), the warm-up's `result` (level 1; None for level 0), its `snapshot` of held module files, the
    warnings filters and sys.path entries to restore in a child, the random generators' seeding (rngstate.py),
    how long the warm-up took (seconds) and the RSS (KiB) when it ended."""

    state: str = "warming"
    state_reason: str = ""
    seconds: float = 0.0
    result: WarmResult | None = None
    snapshot: Snapshot | None = None
    warnings_filters: list[Any] = field(default_factory=list)
    sys_path_added: list[str] = field(default_factory=list)
    rng: SeedTracker = field(default_factory=SeedTracker)
    rss_kib: int | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.snapshot is not None


class Policy(Protocol):
    """What a level decides for its fork server (level0.Level0, level1.Level1)."""

    #: 0 or 1: told to the run child (its header, its xdist workers)
    level: int
    checkpoint: Checkpoint

    def admit(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool) -> Plan | None:
        """The Plan (evictions) for a valid run request of this key, or None once the policy has handed the
        run on or refused it (server.refuse)."""

    def forked(self, pid: int, request: dict[str, Any], worker: bool, plan: Plan) -> None:
        """A run was forked for `request` with `plan`."""

    def after_request(self) -> None:
        """A run request was handled (forked, handed on or refused) and the client's fds are closed here."""

    def level_note(self) -> str:
        """Why this level serves the run being forked ('' for level 1)."""

    def channels(self) -> list[socket.socket]:
        """Other sockets the loop watches (the level channels); readable ones go to channel_event."""

    def channel_event(self, sock: socket.socket) -> None: ...

    def tick(self) -> None:
        """Once per turn of the loop, after reaping: re-warms, safety nets, memory."""

    def idle(self) -> bool:
        """True when the server, idle since `server.last_activity`, should stop."""

    def handed_over(self) -> bool:
        """A successor took the socket (SIGUSR1): True to leave the loop."""

    def other_children(self) -> bool:
        """True while children other than runs (level 0's level-1 processes) are to be reaped."""

    def child_ended(self, pid: int, status: int) -> None: ...

    def leaving(self, reason: str) -> None:
        """The server stops for `reason` (idle, a stop request, its lock file gone)."""

    def reload(self) -> None:
        """A client asked to re-execute the daemon (--daemon-reload)."""

    def status(self) -> dict[str, Any]:
        """The level's status fields (status.py)."""


def _on_sigchld(signum: int, frame: Any) -> None:
    """SIGCHLD's handler: nothing; the wake-up fd (ForkServer.install_wakeup) is what wakes the loop."""


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
    if request.get("type") == "early":
        interpreter = request.get("interpreter")
        if not isinstance(interpreter, dict) or not all(isinstance(k, str) for k in interpreter):
            return "interpreter is not a dict"
    from .procstate import problem

    return problem(request.get("process"), nfds)


def reply_and_close(conn: socket.socket, message: dict[str, Any]) -> None:
    """Send one frame (2 s at most) and close the connection; a client that went away is no error."""
    try:
        conn.settimeout(2.0)
        protocol.send(conn, message)
    except OSError:
        pass
    conn.close()


class ForkServer:
    """The loop (module docstring) for `spec`'s socket, with `policy` deciding what is level-specific.
    State that outlives a turn of the loop lives here: the listener, the pending connections, the run table,
    the counters, the SIGCHLD self-pipe, and the stop / hand-over flags the signal handlers set."""

    def __init__(self, spec: Spec, policy: Policy) -> None:
        self.spec = spec
        self.policy = policy
        self.files = DaemonFiles(Path(spec.folder), spec.key)
        self.started = time.time()
        self.counters = Counters()
        self.runs = RunTable()
        self.listener: Listener | None = None
        #: connections whose request is still arriving (see accept)
        self.pending: dict[socket.socket, protocol.FrameReader] = {}
        #: the SIGCHLD self-pipe (read end, write end) while serving
        self.wakeup: tuple[int, int] | None = None
        #: SIGTERM, a stop request, idle, the lock file gone: leave the loop
        self.stopping = False
        #: set by SIGUSR1 from the successor: stop accepting, leave when the policy says so
        self.handing_over = False
        self.last_activity = time.monotonic()
        #: when a run was last going (monotonic): a re-warm's debounce counts from there
        self.last_run_at = time.monotonic()
        #: the last run child's peak RSS (wait4, KiB) and largest sampled PSS (KiB)
        self.last_child_memory: tuple[int, int | None] | None = None
        self._sampled = 0.0

    # ---- socket -----------------------------------------------------------------------------------------
    def bind(self, handover: bool, before_rename: Callable[[], None] | None = None) -> None:
        """Listen on the key's socket (listener.Listener.bind: taking it over atomically with `handover`)."""
        self.listener = Listener.bind(self.files, handover, before_rename=before_rename)
        log.info("listening on %s", self.files.socket)

    def close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def drop_pending(self) -> None:
        """Close the connections whose request never arrived (leaving the loop)."""
        for conn, reader in list(self.pending.items()):
            reader.close()
            conn.close()
        self.pending.clear()

    def inherited_sockets(self) -> list[socket.socket]:
        """The sockets a forked child must close: the listener, the runs' and pending connections, the
        policy's channels."""
        return [s for s in (self.listener, *self.runs.connections(), *self.policy.channels(), *self.pending)
                if s is not None]

    def received_fds(self) -> list[int]:
        """fds received on pending connections so far (a forked child must close them: a client's pipe)."""
        return [fd for reader in self.pending.values() for fd in reader.fds]

    def check_files(self) -> None:
        """The key's files still ours? A lock file that is gone or replaced (a tmp cleaner emptied the socket
        folder) means another daemon may start for the key: leave. A socket file that is gone while this
        process holds it is bound again, so clients find the daemon."""
        try:
            held = os.fstat(self.spec.lock_fd)
            named = os.stat(self.files.lock)
            same = (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
        except OSError:
            same = False
        if not same:
            log.warning("the lock file %s is gone or replaced: leaving", self.files.lock)
            self.stop("lock file gone")
            return
        if self.listener is None or self.handing_over:
            return
        if self.listener.path_gone():
            log.warning("the socket %s was deleted: listening on it again", self.files.socket)
            old, self.listener = self.listener, None
            old.close()
            self.bind(handover=False)

    def stop(self, reason: str) -> None:
        """Leave the loop (the policy tells level 0 if there is one)."""
        self.policy.leaving(reason)
        self.stopping = True

    # ---- the loop ---------------------------------------------------------------------------------------
    def install_wakeup(self) -> None:
        """A self-pipe that SIGCHLD writes to (signal.set_wakeup_fd): the loop wakes when a run ends, so its
        client gets the exit code at once, not at the next select timeout."""
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

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_handover(self, signum: int, frame: Any) -> None:
        self.handing_over = True

    def serve(self, done: Callable[[], bool] = lambda: False) -> None:
        """The loop, until stopped, handed over (policy.handed_over) or `done()` (level 0: a restart)."""
        assert self.listener is not None
        self.install_wakeup()
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_handover)
        while not self.stopping and not done():
            if self.handing_over:
                # the path is the successor's now: serve what connected before the rename, then close ours
                while self.listener is not None and select.select([self.listener], [], [], 0)[0]:
                    self.accept()
                self.close_listener()
                self.reap()
                if self.policy.handed_over():
                    break
            self._turn()
            self.reap()
            self.runs.escalate()
            self._expire_pending()
            self._sample()
            self.policy.tick()
            if self.runs:
                self.last_activity = self.last_run_at = time.monotonic()
            elif self.policy.idle():
                log.info("idle for %.0fs: exiting", self.spec.idle_timeout)
                self.stop("idle")
        self.drop_pending()
        self.close_listener()

    def _turn(self) -> None:
        channels = self.policy.channels()
        watched: list[Any] = [self.listener] if self.listener is not None else []
        watched += [*self.runs.connections(), *channels, *self.pending]
        if self.wakeup is not None:
            watched.append(self.wakeup[0])
        try:
            readable, _, _ = select.select(watched, [], [], 0.25)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            log.error("select: %s", exc)
            readable = []
        for sock in readable:
            if self.wakeup is not None and sock == self.wakeup[0]:
                self._drain_wakeup()
            elif sock is self.listener:
                self.accept()
            elif sock in self.pending:
                self._pending_event(sock)
            elif self.runs.owns(sock):
                self.runs.client_event(sock)
            elif sock in channels:
                self.policy.channel_event(sock)

    def idle_for(self) -> float:
        return time.monotonic() - self.last_activity if not self.runs else 0.0

    def _sample(self) -> None:
        """At most once a second: the key's files (check_files) and the PSS of running children."""
        now = time.monotonic()
        if now - self._sampled < 1.0:
            return
        self._sampled = now
        self.check_files()
        for run in self.runs:
            pss = pss_kib(run.pid)
            if pss is not None and (run.pss_kib is None or pss > run.pss_kib):
                run.pss_kib = pss

    # ---- requests ---------------------------------------------------------------------------------------
    def accept(self) -> None:
        """Take a connection: check its peer's uid, then read its request as it arrives (`pending`)."""
        assert self.listener is not None
        accepted = self.listener.accept()
        if accepted is None:
            return
        conn, pid, uid = accepted
        self.last_activity = time.monotonic()
        if uid != os.getuid():
            self.reject(conn, f"refused a connection from uid {uid} (pid {pid})", reply=False)
            return
        conn.setblocking(False)
        if len(self.pending) >= MAX_PENDING:
            oldest = min(self.pending, key=lambda c: self.pending[c].deadline)
            self.pending.pop(oldest).close()
            self.reject(oldest, f"{MAX_PENDING} connections waiting to send: dropped the oldest")
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
            self.reject(conn, f"rejected a request: {exc}", reply=not isinstance(exc, EOFError))
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

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for conn in [c for c, r in self.pending.items() if r.expired(now)]:
            self.pending.pop(conn).close()
            self.reject(conn, "rejected a request: read deadline passed")

    def reject(self, conn: socket.socket, error: str, reply: bool = True) -> None:
        """A malformed request: counted, logged, answered with an "error" frame (`reply`) and closed."""
        self.counters.rejected += 1
        self.counters.last_error = error
        log.warning(error)
        if reply:
            reply_and_close(conn, {"type": "error", "reason": error})
        else:
            conn.close()

    def refuse(self, conn: socket.socket, fds: list[int], reason: str) -> None:
        """A valid run this daemon does not serve: the client runs it locally (its fds are closed here)."""
        for fd in fds:
            os.close(fd)
        self.counters.refused += 1
        self.counters.last_refusal = reason
        log.info("refused a run: %s", reason)
        reply_and_close(conn, {"type": "refused", "reason": reason})

    def _dispatch(self, conn: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
        kind = message["type"]
        if kind == "run" or kind == "worker" or kind == "early":
            self.run(conn, message, fds, worker=kind == "worker")
            return
        for fd in fds:
            os.close(fd)
        if kind == "status" or kind == "ping":
            from .status import status_frame

            reply_and_close(conn, status_frame(self))
        elif kind == "stop":
            log.info("stop requested")
            self.policy.leaving("stop requested")
            reply_and_close(conn, {"type": "ok"})
            self.stopping = True
        elif kind == "reload":
            log.info("reload requested")
            reply_and_close(conn, {"type": "ok"})
            self.policy.reload()
        else:
            self.reject(conn, f"rejected a request of unknown type {kind!r}")

    def run(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool = False) -> None:
        """Fork a child for a "run" request (pytest's console entry point) or a "worker" request (an xdist
        worker: the interpreter arguments execnet gave the launcher, daemon/worker.py) once it is
        well-formed, of this key and admitted by the policy."""
        problem = validate_run(request, len(fds))
        if problem is None and worker:
            from .worker import worker_code

            if worker_code(request["argv"]) is None:
                problem = "worker argv is not [-u] [-B] -c CODE"
        if problem:
            for fd in fds:
                os.close(fd)
            self.reject(conn, f"rejected a run request: {problem}")
        elif request["key"] != self.spec.key:
            self.refuse(conn, fds, "key differs")
        elif request["type"] == "early" and self.policy.level != 1:
            self.refuse(conn, fds, "early hand-off: served from the warm project (level 1) only")
        else:
            plan = self.policy.admit(conn, request, fds, worker)
            if plan is not None:
                self._fork_run(conn, request, fds, worker, plan)
        self.policy.after_request()

    def _fork_run(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, plan: Plan) -> None:
        from .child import ChildContext, run

        checkpoint = self.policy.checkpoint
        assert checkpoint.snapshot is not None
        ctx = ChildContext(
            close_sockets=self.inherited_sockets(),
            close_fds=[self.spec.lock_fd, *(self.wakeup or ()), *self.received_fds()],
            warnings_filters=checkpoint.warnings_filters,
            sys_path_added=checkpoint.sys_path_added,
            evict=plan.evict,
            changed=len(plan.changed),
            daemon_pid=os.getpid(),
            warm_age=time.time() - checkpoint.snapshot.created,
            warm=checkpoint.result,
            socket=str(self.files.socket),
            key=self.spec.key,
            worker=worker,
            level=self.policy.level,
            level_note=self.policy.level_note(),
            log_path=str(self.files.log),
            folder=str(self.files.folder),
            rng=checkpoint.rng,
            fresh=bool(request.get("fresh")),
            early=request["type"] == "early",
            files_digest=checkpoint.result.files_digest if checkpoint.result is not None else "",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": native pools only
            pid = os.fork()
        if pid == 0:
            run(conn, request, fds, ctx)  # never returns
        for fd in fds:
            os.close(fd)  # a pipe reader must see EOF when the child is done, not when the server is
        self.counters.served += 1
        self.runs.add(pid, conn)
        self.policy.forked(pid, request, worker, plan)
        what = "xdist worker" if worker else " ".join(request["argv"][1:])[:200]
        log.info("run %d: pid %d, level %d, %d changed, %d evicted: %s", self.counters.served, pid,
                 self.policy.level, len(plan.changed), len(plan.evict), what)

    def reap(self) -> None:
        """Reap every child that ended: a run (runs.RunTable.ended tells its client), else another child of
        this server (policy.child_ended: level 0's level-1 processes)."""
        while self.runs or self.policy.other_children():
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.runs.ended(pid, status)
            if run is None:
                self.policy.child_ended(pid, status)
                continue
            self.last_child_memory = (int(usage.ru_maxrss), run.pss_kib)
            if os.WIFSIGNALED(status):
                self.counters.killed += 1
            from .child import exit_file

            try:
                os.unlink(exit_file(str(self.files.folder), pid))
            except OSError:
                pass
