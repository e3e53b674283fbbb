"""Level 0 of the daemon: the process that holds pytest warm and builds the project's template (level 1).

The daemon is two layers of fork-server checkpoints (docs/how-it-works.md, "Layered templates"):

- Level 0 (this module, `Level0`: the policy of a forkserver.ForkServer) imports pytest and its built-in plugins (`_pytest.config.essential_plugins`
  and `default_plugins`), nothing of the project. It forks level 1 (`build`), and serves a run itself when
  level 1 cannot: a conftest, the ini file or a module imported at configure time changed, a test file was
  added or removed, an installed module level 1 holds changed, or level 1 is still warming. Such a run
  starts from pytest already imported and imports everything else fresh, exactly like a plain run.
- Level 1 (level1.py, forked from level 0) warms the project: the conftests and test modules through
  pytest's assertion rewriting. Runs fork from it.

What level 0 holds is what every pytest run imports before it reads the command line, the ini file or a
conftest, so no run can observe the difference: importing anything more (third-party packages a project
imports, entry-point plugins) before the project's conftests could change what they do (a conftest that sets
`MPLBACKEND` or `DJANGO_SETTINGS_MODULE`, import-order side effects), and pytest imports entry-point plugins
through its assertion-rewriting hook, which level 0 has not installed.

Hand-overs of the socket are atomic renames (listener.Listener.bind): a level 1 that is ready binds a name
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
from logging.handlers import RotatingFileHandler
from typing import Any

from . import channel, protocol, runtime
from .forkserver import Checkpoint, Counters, ForkServer
from .freshness import Plan, Snapshot
from .level1 import MAX_DIRTY_RETRIES, dirty_wait, run_level1
from .paths import DaemonFiles
from .procfs import process_state
from .spec import Spec, serve_argv

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


class Level0:
    """Level 0's policy (see the module docstring) for its ForkServer: it serves runs with an empty warm
    state (pytest and its plugins) while it holds the socket; `build()` forks level 1."""

    level = 0

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.checkpoint = Checkpoint()
        self.server = ForkServer(spec, self)
        self.builds: dict[int, Build] = {}
        self.failed_builds = 0
        #: why the last level 1 did not take over, if it did not
        self.build_problem: str | None = None
        self.served_here = 0
        self.modules = 0
        #: why level 1 handed over the run being started (for its header)
        self.note: str | None = None
        #: (reason, files_digest) of a level-1 build to start once the run being served has been forked
        self.pending_build: tuple[str, Any] | None = None
        #: why the whole daemon re-executes (what level 0 holds changed, a reload), None while it serves
        self.restart_reason: str | None = None
        #: the restart is for files that changed during level 0's own warm-up (Spec.dirty_retries counts it)
        self.dirty = False

    # ---- warm-up ----------------------------------------------------------------------------------------
    def warm(self) -> None:
        """Import pytest, its built-in plugins and the daemon's run-time modules; take the checkpoint."""
        cp = self.checkpoint
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
            from . import child, hold, procstate, replay, session, warmup, worker  # noqa: F401
            from .. import early, measuring  # noqa: F401
            # the plugin itself: a plain run imports it from its entry point (pytest rewrites its asserts),
            # a run child would import it again each time (~35 ms) since the warm-ups run without it
            from .. import plugin  # noqa: F401
        cp.seconds = time.perf_counter() - t0
        self.modules = len(sys.modules)
        cp.warnings_filters = list(warnings.filters)
        cp.snapshot = snap = Snapshot(self.spec.rootdir, sys.modules, set(sys.modules), [], started_ns,
                                      [os.path.abspath(p or ".") for p in sys.path])
        if snap.dirty and self.spec.dirty_retries < MAX_DIRTY_RETRIES:
            # a file it imported was written just before (e.g. the plugin reinstalled): it may hold older
            # code than the file; start again once the file is older than the margin (serve_main)
            dirty_wait(snap)
            self.restart_reason = f"{len(snap.dirty)} files changed during the warm-up of level 0"
            self.dirty = True
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if alive:
            cp.state, cp.state_reason = "not forkable", f"threads alive in level 0: {', '.join(alive)}"
        else:
            cp.state = "ready"
        log.info("level 0 warm in %.2fs: %d modules held, state %s", cp.seconds, len(sys.modules), cp.state)
        gc.collect()
        gc.freeze()  # (level 0 is small: no memory limit for it, cp.rss_kib stays None)

    # ---- level 1 ----------------------------------------------------------------------------------------
    def build(self, reason: str, files_digest: str | None = None, dirty_retries: int = 0, successor_of: int = 0) -> None:
        """Fork a level-1 template that warms the project and takes the socket over from `successor_of`
        (this process by default). A build already warming is stopped first: the newest one wins."""
        if self.checkpoint.state != "ready":
            return
        for build in [b for b in self.builds.values() if not b.holding and b.state == "warming"]:
            self._terminate(build)
        digest = self.spec.files_digest if files_digest is None else files_digest
        spec = replace(self.spec, reason=reason, dirty_retries=dirty_retries, files_digest=digest,
                       successor_of=successor_of or os.getpid(), generation=self.spec.generation + 1)
        server = self.server
        ours, theirs = socket.socketpair()
        inherited = [*server.inherited_sockets(), ours]
        inherited_fds = server.received_fds()
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
                server.pending.clear()
                server.close_wakeup()
                code = run_level1(spec, theirs, self.checkpoint.snapshot)
            except BaseException:  # noqa: BLE001
                log.exception("level 1 failed")
            finally:
                logging.shutdown()
                os._exit(code)
        theirs.close()
        self.spec = server.spec = replace(self.spec, generation=spec.generation, files_digest=digest)  # what later builds find
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
        if self.server.listener is None:
            self.server.bind(handover=True)
        if holder is not None:
            holder.holding = False
            try:
                os.kill(holder.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def _absorb(self, counters: Any) -> None:
        """Level 1's counters (sent with the message that makes level 0 take the socket back)."""
        if isinstance(counters, dict):
            mine = asdict(self.server.counters)
            merged = {k: counters.get(k, mine[k]) for k in mine}
            if all(isinstance(merged[k], int) for k in ("served", "refused", "rejected", "killed")):
                self.server.counters = Counters(**merged)

    # ---- each turn --------------------------------------------------------------------------------------
    def channels(self) -> list[socket.socket]:
        return [b.channel for b in self.builds.values() if b.channel is not None]

    def handed_over(self) -> bool:
        self.server.handing_over = False  # level 1 holds the socket now; level 0 stays to build the next one
        return False

    def idle(self) -> bool:
        # with a level 1 alive, its own idle timeout decides (it tells level 0 to stop)
        return (not self.builds and self.spec.idle_timeout > 0
                and time.monotonic() - self.server.last_activity > self.spec.idle_timeout)

    def tick(self) -> None:
        """The safety nets of the hand-overs: when nobody holds the socket and no build is on its way to,
        level 0 listens again; a holder stopped (SIGSTOP, a debugger) for STOPPED_GRACE seconds is replaced
        (_replace_stopped_holder)."""
        self._replace_stopped_holder()
        server = self.server
        if server.listener is None and self._holder() is None and self._warming() is None and not server.stopping:
            log.warning("no process holds the socket: level 0 listens again")
            server.bind(handover=False)

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
        listener = self.server.listener
        return listener is not None and listener.owns_path()

    def other_children(self) -> bool:
        return bool(self.builds)

    def leaving(self, reason: str) -> None:
        pass  # (the top level: nobody to tell; serve_main stops the level-1 processes)

    def reload(self) -> None:
        self.restart_reason = "reload requested"

    # ---- the channels from level 1 ----------------------------------------------------------------------
    def channel_event(self, sock: socket.socket) -> None:
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
        self._reply(build, {"type": "status", "pid": os.getpid(), "level0": self._level0_info(),
                            "building": self._building(), "last_build_failed": self.build_problem})

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
        if self.server.listener is not None:
            self.server.handing_over = True  # (its SIGUSR1 says the same; a successor of a level 1 sends none)

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
        self.server.run(conn, message.request, fds[1:], worker=message.worker)

    def on_rebuild(self, message: channel.Rebuild, build: Build, fds: list[int]) -> None:
        self._absorb(message.counters)
        build.state = "rebuild"
        if build.holding:
            self._take_back()
        if message.dirty_retries is not None:  # its own warm-up saw files change: the same build again
            reason = f"{build.reason.split('; warmed again')[0]}; warmed again: {message.reason}"
        else:
            reason = f"rebuild: {message.reason}"
        holder = self._holder()  # (a re-warm's build: the level 1 still serving, which the next one succeeds)
        self.build(reason, files_digest=message.files_digest, dirty_retries=message.dirty_retries or 0,
                   successor_of=holder.pid if holder is not None else 0)

    def on_rewarm(self, message: channel.Rewarm, build: Build, fds: list[int]) -> None:
        if self._warming() is None:
            self.build(message.reason, files_digest=message.files_digest, successor_of=build.pid)

    def on_not_ready(self, message: channel.NotReady, build: Build, fds: list[int]) -> None:
        build.state = "not-ready"
        self.build_problem = f"level 1 {message.state}: {message.reason}"
        log.warning("%s: level 0 serves runs", self.build_problem)

    def on_restart(self, message: channel.Restart, build: Build, fds: list[int]) -> None:
        self.restart_reason = message.reason

    def on_stop(self, message: channel.Stop, build: Build, fds: list[int]) -> None:
        log.info("level 1 pid %d: %s", build.pid, message.reason)
        self.server.stopping = True

    @staticmethod
    def _reply(build: Build, message: dict[str, Any]) -> None:
        if build.channel is None:
            return
        try:
            build.channel.settimeout(2.0)
            protocol.send(build.channel, message)
        except OSError:
            pass

    def child_ended(self, pid: int, status: int) -> None:
        build = self.builds.get(pid)
        if build is None:
            return
        # what it said before it exited (e.g. "rebuild" just before leaving) is still to be read
        while build.channel is not None and select.select([build.channel], [], [], 0)[0]:
            self.channel_event(build.channel)
        del self.builds[pid]
        if build.channel is not None:
            build.channel.close()
        log.info("level 1 pid %d ended (status %d, %s)", pid, status, build.state)
        if build.state == "warming":  # crashed or killed before it took over or said why
            self.failed_builds += 1
            self.build_problem = f"level 1 pid {pid} ended (status {status}) while warming; see the log"
        if build.holding and not self.server.stopping and os.waitstatus_to_exitcode(status) != 0:
            # the holder died (a level 1 that hands over, stops or idles out exits with 0, and the one that
            # took over may not have said "holding" yet): hold the socket again and build a new one
            self.failed_builds += 1
            self.build_problem = f"level 1 pid {pid} ended (status {status}) while serving; see the log"
            if self.server.listener is None:
                self.server.bind(handover=False)
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
    def admit(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool) -> Plan | None:
        """Level 0 serves any run whose request is well-formed and whose key matches, unless what it holds
        changed (then the whole daemon restarts and the run is local)."""
        cp = self.checkpoint
        if not cp.ready:
            self.server.refuse(conn, fds, f"level 0 {cp.state}: {cp.state_reason}")
            return None
        assert cp.snapshot is not None
        plan = cp.snapshot.plan(sys.modules)
        if plan.refuse:
            self.server.refuse(conn, fds, plan.refuse)
            self.restart_reason = plan.refuse
            return None
        self.served_here += 1
        digest = request.get("files_digest")
        if (not worker and isinstance(digest, str) and digest and digest != self.spec.files_digest
                and self._holder() is None and self._warming() is None):
            # the last level 1 expected other test files than this run finds (e.g. one was added while the
            # daemon restarted): build one that expects these
            self.pending_build = ("rebuild: test files added or removed", digest)
        return plan

    def forked(self, pid: int, request: dict[str, Any], worker: bool, plan: Plan) -> None:
        pass

    def after_request(self) -> None:
        # built only now: a level 1 forked while the client's fds were open here would keep its pipes open
        if self.pending_build is not None:
            (reason, digest), self.pending_build = self.pending_build, None
            self.build(reason, files_digest=digest)

    def level_note(self) -> str:
        note, self.note = self.note, None
        if note:
            return note
        warming = self._warming()
        if warming is not None:
            return f"level 1 is warming ({warming.reason})"
        return self.build_problem or "level 1 not ready"

    # ---- status -----------------------------------------------------------------------------------------
    def _level0_info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uptime": time.time() - self.server.started,
                "warm_seconds": round(self.checkpoint.seconds, 3), "modules": self.modules,
                "served": self.served_here, "state": self.checkpoint.state}

    def _building(self) -> str | None:
        warming = self._warming()
        if warming is None:
            return None
        return f"level 1 pid {warming.pid} warming for {time.monotonic() - warming.started:.1f}s ({warming.reason})"

    def status(self) -> dict[str, Any]:
        """Status while level 0 holds the socket: "level0" (itself), "level1" (a build warming, or None)."""
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

    # ---- restart ----------------------------------------------------------------------------------------
    def reexec(self) -> None:
        """Replace this process with a fresh daemon (same pid, same lock): a cold interpreter warms again."""
        reason = self.restart_reason or "restart"
        log.info("re-executing to rebuild the warm state: %s", reason)
        server = self.server
        self.stop_children()
        server.drop_pending()
        server.close_listener()
        server.runs.close_connections()
        logging.shutdown()
        spec = replace(self.spec, reason=reason, dirty_retries=self.spec.dirty_retries + 1 if self.dirty else 0,
                       successor_of=0)
        os.set_inheritable(spec.lock_fd, True)
        argv = serve_argv(spec)
        os.execv(argv[0], argv)


def serve_main(spec_json: str) -> int:
    """Entry point of the daemon process (see __main__.py, which has detached it already): level 0, which
    builds level 1."""
    spec = Spec.from_json(spec_json)
    os.umask(0o077)  # the log, pid and cache files are the user's alone (runs get the client's umask)
    runtime.set_role("template")
    level0 = Level0(spec)
    files = level0.server.files
    setup_logging(files)
    try:
        fcntl.flock(spec.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already (inherited): re-asserted
    except OSError as exc:
        log.error("lock %s not held (%s): another daemon has it; exiting", files.lock, exc)
        return 1
    files.pid.write_text(f"{os.getpid()}\n", encoding="ascii")
    files.meta.write_text(json.dumps({"rootdir": spec.rootdir, "executable": sys.executable,
                                      "warm_args": spec.warm_args, "pid": os.getpid()}), encoding="utf-8")
    log.info("daemon pid %d for %s (key %s): %s", os.getpid(), spec.rootdir, spec.key, spec.reason)
    try:
        level0.warm()
        if level0.restart_reason is None:
            level0.server.bind(handover=False)
            level0.build(spec.reason, files_digest=spec.files_digest)
            level0.server.serve(done=lambda: level0.restart_reason is not None)
    except Exception:  # noqa: BLE001
        log.exception("daemon failed")
        level0.server.close_listener()
        level0.stop_children()
        return 1
    level0.stop_children()
    if level0.restart_reason is not None and not level0.server.stopping:
        level0.reexec()
    try:
        if files.pid.read_text(encoding="ascii").strip() == str(os.getpid()):
            files.pid.unlink()
            files.meta.unlink()
    except OSError:
        pass
    log.info("daemon pid %d exits", os.getpid())
    return 0


def setup_logging(files: DaemonFiles) -> None:
    """The daemon's log: `files.log`, rotated at 1 MiB (one old file kept); level 1 and runs inherit it."""
    handler = RotatingFileHandler(files.log, maxBytes=1 << 20, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
