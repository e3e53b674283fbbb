"""Level 0 of the daemon: the process that holds pytest warm and builds the project's template (level 1).

The daemon is two layers of fork-server checkpoints (docs/how-it-works.md, "Layered templates"):

- Level 0 (this module, `Base`) imports pytest and its built-in plugins (`_pytest.config.essential_plugins`
  and `default_plugins`), nothing of the project. It forks level 1 (`build`), and serves a run itself when
  level 1 cannot: a conftest, the ini file or a module imported at configure time changed, a test file was
  added or removed, an installed module level 1 holds changed, or level 1 is still warming. Such a run
  starts from pytest already imported and imports everything else fresh, exactly like a plain run.
- Level 1 (server.Template, forked from level 0) warms the project: the conftests and test modules through
  pytest's assertion rewriting. Runs fork from it.

What level 0 holds is what every pytest run imports before it reads the command line, the ini file or a
conftest, so no run can observe the difference: importing anything more (third-party packages a project
imports, entry-point plugins) before the project's conftests could change what they do (a conftest that sets
`MPLBACKEND` or `DJANGO_SETTINGS_MODULE`, import-order side effects), and pytest imports entry-point plugins
through its assertion-rewriting hook, which level 0 has not installed.

Hand-overs of the socket are atomic renames (server.Template.bind): a level 1 that is ready binds a name
beside the socket, renames it over, signals the previous holder (level 0, or the level 1 it succeeds) with
SIGUSR1 and tells level 0 "holding". Level 0 takes the socket back the same way when level 1 hands it a run
("forward") or asks for a rebuild. Messages between the levels go over a socketpair per level-1 process, in
protocol.py frames: from level 1 "holding", "forward" (with the client's connection and stdio fds),
"rebuild", "rewarm", "restart", "stop", "not-ready", "status" (level 0 replies).

Only a change to what level 0 holds (pytest's own files, installed packages: site folders, .pth files) or a
reload restarts the whole daemon (re-execution of level 0, same pid).
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any

from . import channel, protocol, runtime
from ..fingerprints import RACY_MARGIN_NS
from .freshness import Plan, Snapshot
from .procfs import process_state
from .server import MAX_REWARMS, Counters, Template, _setup_logging, run_level1
from .spec import Spec

log = logging.getLogger("pytest_fastcollect.daemon")

#: Level-1 builds in a row that may fail (crash or end without taking over) before level 0 stops building.
MAX_FAILED_BUILDS = 3
#: Seconds a stopping level 1 has between SIGTERM and SIGKILL.
STOP_GRACE = 5.0
#: Seconds a level 1 holding the socket may stay stopped (SIGSTOP) before level 0 replaces it.
STOPPED_GRACE = 2.0


@dataclass
class Build:
    """A level-1 process forked by level 0: its pid, level 0's end of the channel, when it started
    (monotonic), why it was built, and whether it holds the socket."""

    pid: int
    channel: socket.socket | None
    started: float
    reason: str
    #: the test files its warm-up must find (client.files_digest)
    files_digest: str = ""
    holding: bool = False
    #: "warming" until it holds the socket ("ready") or gives up ("not-ready", "rebuild")
    state: str = "warming"
    #: when it was first seen stopped while holding the socket (monotonic), None while it runs
    stopped_since: float | None = None


def builtin_plugin_modules() -> list[str]:
    """Module names of pytest's built-in plugins, as PytestPluginManager.import_plugin names them
    (`_pytest.<name>` for every name in `_pytest.config.essential_plugins` and `default_plugins`)."""
    from _pytest.config import default_plugins, essential_plugins

    return [f"_pytest.{name}" for name in dict.fromkeys((*essential_plugins, *default_plugins))]


class Base(Template):
    """Level 0 (see the module docstring). Serves runs with an empty warm state while it holds the socket;
    `build()` forks level 1."""

    level = 0

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        self.builds: dict[int, Build] = {}
        self.failed_builds = 0
        #: why the last level 1 did not take over, if it did not
        self.build_problem: str | None = None
        self.served_here = 0
        self.level0_modules = 0
        #: why level 1 handed over the run being started (for its header)
        self.note: str | None = None
        #: (reason, files_digest) of a level-1 build to start once the run being served has been forked
        self.pending_build: tuple[str, Any] | None = None

    # ---- warm-up ----------------------------------------------------------------------------------------
    def warm(self) -> None:
        os.chdir(self.spec.cwd)
        started_ns = time.time_ns()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a run imports these again under its own filters: nothing lost
            import pytest  # noqa: F401

            for name in builtin_plugin_modules():
                try:
                    importlib.import_module(name)
                except Exception as exc:  # noqa: BLE001 - the run imports it and reports the error
                    log.warning("level 0: importing %s raised %s", name, exc)
            # the daemon's own modules that runs use, loaded now: in level 0's snapshot, so that an edit of
            # one is a change for level 1 too, which inherits them (freshness.Snapshot `inherited`)
            from . import child, procstate, replay, warmup, worker  # noqa: F401
            from .. import measuring  # noqa: F401
        self.warm_seconds = time.perf_counter() - t0
        self.level0_modules = len(sys.modules)
        self.warnings_filters = list(warnings.filters)
        self.snapshot = Snapshot(self.spec.rootdir, sys.modules, set(sys.modules), [], started_ns,
                                 [os.path.abspath(p or ".") for p in sys.path])
        if self.snapshot.dirty and self.spec.rewarms < MAX_REWARMS:
            # a file it imported was written just before (e.g. the plugin reinstalled): it may hold older
            # code than the file; start again once the file is older than the margin (serve_main)
            newest = max(max(self.snapshot.entries[p].fp.mtime_ns, self.snapshot.entries[p].fp.ctime_ns) for p in self.snapshot.dirty)
            time.sleep(max(0.0, (newest + RACY_MARGIN_NS - time.time_ns()) / 1e9))
            self.reexec_reason = f"{len(self.snapshot.dirty)} files changed during the warm-up of level 0"
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if alive:
            self.state, self.state_reason = "not forkable", f"threads alive in level 0: {', '.join(alive)}"
        else:
            self.state = "ready"
        log.info("level 0 warm in %.2fs: %d modules held, state %s", self.warm_seconds, len(sys.modules), self.state)
        gc.collect()
        gc.freeze()
        self.warm_rss_kib = None  # level 0 is small: no memory restarts for it

    # ---- level 1 ----------------------------------------------------------------------------------------
    def build(self, reason: str, files_digest: str | None = None, rewarms: int = 0, successor_of: int = 0) -> None:
        """Fork a level-1 template that warms the project and takes the socket over from `successor_of`
        (this process by default). A build already warming is stopped first: the newest one wins."""
        if self.state != "ready":
            return
        for build in [b for b in self.builds.values() if not b.holding and b.state == "warming"]:
            self._terminate(build)
        digest = self.spec.files_digest if files_digest is None else files_digest
        spec = replace(self.spec, reason=reason, rewarms=rewarms, files_digest=digest,
                       successor_of=successor_of or os.getpid(), generation=self.spec.generation + 1)
        ours, theirs = socket.socketpair()
        inherited = [s for s in (self.listener, *self.runs.connections(), *self._channels(), ours,
                                 *self.pending) if s is not None]
        inherited_fds = self.pending_fds()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the level-1 process (tested end to end)
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                for sock in inherited:
                    os.close(sock.detach())  # detach: level 0's objects must not unlink or close them later
                for fd in inherited_fds:
                    os.close(fd)
                self.pending.clear()
                self.close_wakeup()
                code = run_level1(spec, theirs, self.snapshot)
            except BaseException:  # noqa: BLE001
                log.exception("level 1 failed")
            finally:
                logging.shutdown()
                os._exit(code)
        theirs.close()
        self.spec = replace(self.spec, generation=spec.generation, files_digest=digest)  # what later builds find
        self.builds[pid] = Build(pid, ours, time.monotonic(), reason, digest)
        log.info("level 1 pid %d building (%s)", pid, reason)

    def _terminate(self, build: Build) -> None:
        try:
            os.kill(build.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        build.state = "stopped"

    def _warming(self) -> Build | None:
        return next((b for b in self.builds.values() if b.state == "warming"), None)

    def _holder(self) -> Build | None:
        return next((b for b in self.builds.values() if b.holding), None)

    def _take_back(self) -> None:
        """Hold the socket again (a rename over level 1's) and tell its holder to leave."""
        holder = self._holder()
        if self.listener is None:
            self.bind(handover=True)
        if holder is not None:
            holder.holding = False
            try:
                os.kill(holder.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def _carry_counters(self) -> None:
        """Level 1 sends its counters with the request that makes level 0 take the socket back."""

    def _absorb(self, counters: Any) -> None:
        if isinstance(counters, dict):
            mine = asdict(self.counters)
            merged = {k: counters.get(k, mine[k]) for k in mine}
            if all(isinstance(merged[k], int) for k in ("served", "refused", "rejected", "killed")):
                self.counters = Counters(**merged)

    # ---- loop hooks -------------------------------------------------------------------------------------
    def _channels(self) -> list[socket.socket]:
        return [b.channel for b in self.builds.values() if b.channel is not None]

    def _handed_over(self) -> bool:
        self.handing_over = False  # level 1 holds the socket now; level 0 stays to build the next one
        return False

    def _idle(self) -> bool:
        # with a level 1 alive, its own idle timeout decides (it tells level 0 to stop)
        return not self.builds and super()._idle()

    def _maybe_rewarm(self) -> None:
        """(Each turn of the loop.) The safety nets of the hand-overs: when nobody holds the socket and no
        build is on its way to, level 0 listens again; a holder stopped (SIGSTOP, a debugger) for
        STOPPED_GRACE seconds is replaced (stopped_holder)."""
        self._replace_stopped_holder()
        if self.listener is None and self._holder() is None and self._warming() is None and not self.stopping:
            log.warning("no process holds the socket: level 0 listens again")
            self.bind(handover=False)

    def _replace_stopped_holder(self) -> None:
        """A level 1 that holds the socket but is stopped (state T or t in /proc) answers nobody: clients
        time out and run locally. After STOPPED_GRACE seconds level 0 takes the socket back, kills it (the
        connections waiting in its queue then see EOF and run locally at once) and builds a new one."""
        holder = self._holder()
        if holder is None:
            return
        if process_state(holder.pid) not in ("T", "t"):
            holder.stopped_since = None
            return
        now = time.monotonic()
        if holder.stopped_since is None:
            holder.stopped_since = now
            return
        if now - holder.stopped_since < STOPPED_GRACE:
            return
        reason = f"level 1 pid {holder.pid} was stopped for {now - holder.stopped_since:.0f}s"
        log.warning("%s: replacing it", reason)
        self._take_back()
        try:
            os.kill(holder.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        holder.state = "stopped"
        self.build_problem = reason
        if self._warming() is None:
            self.build(f"rebuild: {reason}")

    def _own_socket(self) -> bool:
        """True if the socket path is level 0's own listener."""
        return self.listener is not None and self.listener.owns_path()

    def _other_children(self) -> bool:
        return bool(self.builds)

    def _channel_event(self, sock: socket.socket) -> None:
        """A message from a level 1 (channel.py), dispatched to on_<type>(message, build, fds); fds not
        taken by the handler are closed."""
        build = next((b for b in self.builds.values() if b.channel is sock), None)
        if build is None:
            return
        try:
            sock.setblocking(True)
            frame, fds = protocol.recv(sock, deadline=time.monotonic() + 5.0, max_fds=1 + protocol.MAX_FDS)
        except (EOFError, OSError, protocol.ProtocolError) as exc:
            if not isinstance(exc, EOFError):
                log.warning("level 1 pid %d: bad message: %s", build.pid, exc)
            sock.close()
            build.channel = None
            return
        try:
            message = channel.parse(frame)
        except protocol.ProtocolError as exc:
            log.warning("level 1 pid %d: %s", build.pid, exc)
            message = None
        if not isinstance(message, channel.Forward) or not fds:
            for fd in fds:
                os.close(fd)
            fds = []
        if message is not None and (fds or not isinstance(message, channel.Forward)):
            channel.dispatch(self, message, build, fds)

    def on_status(self, message: channel.Status, build: Build, fds: list[int]) -> None:
        self._reply(build, self._status_for_level1())

    def on_holding(self, message: channel.Holding, build: Build, fds: list[int]) -> None:
        if build.state == "stopped" or self._own_socket():
            # a build stopped meanwhile, or level 0 took the socket back after its rename: it holds nothing
            log.info("level 1 pid %d took the socket over too late: stopping it", build.pid)
            self._terminate(build)
            return
        build.holding, build.state = True, "ready"
        self.failed_builds, self.build_problem = 0, None
        for other in self.builds.values():
            if other is not build:
                other.holding = False
        if self.listener is not None:
            self.handing_over = True  # (its SIGUSR1 says the same; a successor of a level 1 sends none)

    def on_forward(self, message: channel.Forward, build: Build, fds: list[int]) -> None:
        """Serve the run level 1 passed on: fds[0] is the client's connection, the rest its fds."""
        conn = socket.socket(fileno=fds[0])
        if message.fresh:  # level 1 is fine; this run needs the project imported fresh
            self.note = message.reason
        else:
            if build.holding:  # the first run it cannot serve: level 0 holds the socket again and rebuilds
                self._absorb(message.counters)
                self._take_back()
                self.pending_build = (f"rebuild: {message.reason}", message.files_digest)
            self.note = f"level 1 is being rebuilt: {message.reason}"
        self._run(conn, message.request, fds[1:], worker=message.worker)

    def on_rebuild(self, message: channel.Rebuild, build: Build, fds: list[int]) -> None:
        self._absorb(message.counters)
        build.state = "rebuild"
        if build.holding:
            self._take_back()
        if message.rewarms is not None:  # its own warm-up saw files change: the same build again
            reason = f"{build.reason.split('; warmed again')[0]}; warmed again: {message.reason}"
        else:
            reason = f"rebuild: {message.reason}"
        holder = self._holder()  # (a re-warm's build: the level 1 still serving, which the next one succeeds)
        self.build(reason, files_digest=message.files_digest, rewarms=message.rewarms or 0,
                   successor_of=holder.pid if holder is not None else 0)

    def on_rewarm(self, message: channel.Rewarm, build: Build, fds: list[int]) -> None:
        if self._warming() is None:
            self.build(message.reason, files_digest=message.files_digest, successor_of=build.pid)

    def on_not_ready(self, message: channel.NotReady, build: Build, fds: list[int]) -> None:
        build.state = "not-ready"
        self.build_problem = f"level 1 {message.state}: {message.reason}"
        log.warning("%s: level 0 serves runs", self.build_problem)

    def on_restart(self, message: channel.Restart, build: Build, fds: list[int]) -> None:
        self.reexec_reason = message.reason

    def on_stop(self, message: channel.Stop, build: Build, fds: list[int]) -> None:
        log.info("level 1 pid %d: %s", build.pid, message.reason)
        self.stopping = True

    @staticmethod
    def _reply(build: Build, message: dict[str, Any]) -> None:
        if build.channel is None:
            return
        try:
            build.channel.settimeout(2.0)
            protocol.send(build.channel, message)
        except OSError:
            pass

    def _child_ended(self, pid: int, status: int) -> None:
        build = self.builds.get(pid)
        if build is None:
            return
        # what it said before it exited (e.g. "rebuild" just before leaving) is still to be read
        while build.channel is not None and select.select([build.channel], [], [], 0)[0]:
            self._channel_event(build.channel)
        del self.builds[pid]
        if build.channel is not None:
            build.channel.close()
        log.info("level 1 pid %d ended (status %d, %s)", pid, status, build.state)
        if build.state == "warming":  # crashed or killed before it took over or said why
            self.failed_builds += 1
            self.build_problem = f"level 1 pid {pid} ended (status {status}) while warming; see the log"
        if build.holding and not self.stopping and os.waitstatus_to_exitcode(status) != 0:
            # the holder died (a level 1 that hands over, stops or idles out exits with 0, and the one that
            # took over may not have said "holding" yet): hold the socket again and build a new one
            self.failed_builds += 1
            self.build_problem = f"level 1 pid {pid} ended (status {status}) while serving; see the log"
            if self.listener is None:
                self.bind(handover=False)
            if self.failed_builds < MAX_FAILED_BUILDS and self._warming() is None:
                self.build(f"rebuild: {self.build_problem}")

    def stop_children(self) -> None:
        """Stop every level 1 (SIGTERM, then SIGKILL after STOP_GRACE seconds) and reap them."""
        for build in list(self.builds.values()):
            self._terminate(build)
        end = time.monotonic() + STOP_GRACE
        for pid in list(self.builds):
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > end:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    end = float("inf")
                time.sleep(0.02)
            build = self.builds.pop(pid)
            if build.channel is not None:
                build.channel.close()

    # ---- runs -------------------------------------------------------------------------------------------
    def _plan(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool) -> Plan | None:
        """Level 0 serves any run whose request is well-formed and whose key matches, unless what it holds
        changed (then the whole daemon restarts and the run is local)."""
        if self.state != "ready" or self.snapshot is None:
            self._refuse(conn, fds, f"level 0 {self.state}: {self.state_reason}")
            return None
        plan = self.snapshot.plan(sys.modules)
        if plan.refuse:
            self._refuse(conn, fds, plan.refuse)
            self.reexec_reason = plan.refuse
            return None
        self.served_here += 1
        digest = request.get("files_digest")
        if (not worker and isinstance(digest, str) and digest and digest != self.spec.files_digest
                and self._holder() is None and self._warming() is None):
            # the last level 1 expected other test files than this run finds (e.g. one was added while the
            # daemon restarted): build one that expects these
            self.pending_build = ("rebuild: test files added or removed", digest)
        return plan

    def _run(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool = False) -> None:
        super()._run(conn, request, fds, worker)
        # built only now: a level 1 forked while the client's fds were open here would keep its pipes open
        if self.pending_build is not None:
            (reason, digest), self.pending_build = self.pending_build, None
            self.build(reason, files_digest=digest)

    def _level_note(self) -> str:
        note, self.note = self.note, None
        if note:
            return note
        warming = self._warming()
        if warming is not None:
            return f"level 1 is warming ({warming.reason})"
        return self.build_problem or "level 1 not ready"

    # ---- status -----------------------------------------------------------------------------------------
    def _level0_info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uptime": time.time() - self.started, "warm_seconds": round(self.warm_seconds, 3),
                "modules": self.level0_modules, "served": self.served_here, "state": self.state}

    def _building(self) -> str | None:
        warming = self._warming()
        if warming is None:
            return None
        return f"level 1 pid {warming.pid} warming for {time.monotonic() - warming.started:.1f}s ({warming.reason})"

    def _status_for_level1(self) -> dict[str, Any]:
        return {"type": "status", "pid": os.getpid(), "level0": self._level0_info(), "building": self._building(),
                "last_build_failed": self.build_problem}

    def _levels(self) -> dict[str, Any]:
        warming = self._warming()
        out: dict[str, Any] = {"pid": os.getpid(), "level0": self._level0_info(), "level1": None,
                               "rewarm": self._building() or "-", "warm_method": None}
        if warming is not None:
            out.update(state="warming", state_reason=f"level 1 pid {warming.pid}; level 0 serves runs meanwhile",
                       started_because=warming.reason)
            out["level1"] = {"pid": warming.pid, "state": "warming", "uptime": time.monotonic() - warming.started,
                             "started_because": warming.reason, "warm_seconds": None}
        else:
            out.update(state="no level 1", state_reason=self.build_problem or "", started_because="-")
        return out


def serve_main(spec_json: str) -> int:
    """Entry point of the daemon process (see __main__.py, which has detached it already): level 0
    (Base), which builds level 1."""
    spec = Spec.from_json(spec_json)
    os.umask(0o077)  # the log, pid and cache files are the user's alone (runs get the client's umask)
    runtime.set_role("template")
    base = Base(spec)
    _setup_logging(base.files)
    try:
        fcntl.flock(spec.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already (inherited): re-asserted
    except OSError as exc:
        log.error("lock %s not held (%s): another daemon has it; exiting", base.files.lock, exc)
        return 1
    base.files.pid.write_text(f"{os.getpid()}\n", encoding="ascii")
    base.files.meta.write_text(json.dumps({"rootdir": spec.rootdir, "executable": sys.executable,
                                           "warm_args": spec.warm_args, "pid": os.getpid()}), encoding="utf-8")
    log.info("daemon pid %d for %s (key %s): %s", os.getpid(), spec.rootdir, spec.key, spec.reason)
    try:
        base.warm()
        if base.reexec_reason is None:
            base.bind(handover=False)
            base.build(spec.reason, files_digest=spec.files_digest)
            base.serve()
    except Exception:  # noqa: BLE001
        log.exception("daemon failed")
        base.close_listener()
        base.stop_children()
        return 1
    base.stop_children()
    if base.reexec_reason is not None and not base.stopping:
        base.reexec()
    try:
        if base.files.pid.read_text(encoding="ascii").strip() == str(os.getpid()):
            base.files.pid.unlink()
            base.files.meta.unlink()
    except OSError:
        pass
    log.info("daemon pid %d exits", os.getpid())
    return 0
