"""Level 1, the template: a fork server (forkserver.py) that warms the project once and forks a child per run.

Life: level 0 (level0.py) forks it -> run_level1(): Level1.warm(): pytest's configuration for the project's
arguments, then every test file imported the way pytest's collector imports it, so conftests and test
modules go through pytest's assertion rewriting -> a freshness Snapshot -> take the socket over from
`spec.successor_of` (bind `<key>.next`, rename it over `<key>.sock`) -> serve until stopped, idle for
`idle_timeout` seconds, or replaced by a level 1 that level 0 built.

Its policy, over the channel to level 0 (channel.py): a run whose test files differ from the warm-up's, or
whose conftest, ini file or configure-time module changed (freshness.Plan.refuse), is handed to level 0 with
the client's fds (Forward: level 0 serves it and builds a new level 1); a run that needs the project imported
fresh (a coverage tool, an xdist worker) is forwarded too, and this level 1 stays. After a served run found
changed project files and REWARM_DEBOUNCE seconds without runs, it asks level 0 for a successor that warms
with the new code while it serves (Rewarm). Idle with its RSS over the memory limit: a rebuild.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import asdict
from typing import Any

from . import channel, protocol, runtime
from ..environment import config_candidates
from ..fingerprints import RACY_MARGIN_NS
from .forkserver import Checkpoint, ForkServer
from .freshness import Plan, Snapshot, held_modules
from .procfs import parent_of, rss_kib
from .spec import Spec
from .warmup import WarmResult, warm_imports, warm_session

log = logging.getLogger("pytest_fastcollect.daemon")

#: Why an xdist worker is forked from level 0, not from the warm project: xdist sets PYTEST_XDIST_WORKER and
#: friends in a worker's environment, and a module may read them at import (a `skipif` on them): the
#: template imported the project without them (found by scripts/plugin_matrix.py, pytest-timeout row).
WORKER_FRESH = "xdist worker: the project is imported with the worker's environment"
#: Warm-ups in a row (level 0 re-executions, level-1 builds) for files that changed during the warm-up
#: before serving anyway (dirty modules are then re-imported by every run; a dirty conftest or config file
#: refuses runs).
MAX_DIRTY_RETRIES = 3
#: Seconds without a run, after a served run found changed project files, before level 0 is asked for a
#: successor template that warms up with the new code (the re-warm; see Level1.tick).
REWARM_DEBOUNCE = 1.0


def memory_restart_reason(rss: int | None, warm_rss: int | None, limit_mib: int) -> str | None:
    """Why an idle template is rebuilt for memory, or None: RSS `rss` (KiB) over `limit_mib` (0 = no limit)
    and grown by more than 10% since its warm-up ended (`warm_rss`). A template whose warm state alone is
    over the limit serves on: rebuilding would build the same state again."""
    if limit_mib <= 0 or rss is None or rss <= limit_mib * 1024:
        return None
    if warm_rss is not None and rss <= warm_rss * 1.1:
        return None
    return f"memory limit: RSS {rss / 1024:.0f} MiB > {limit_mib} MiB"


def dirty_wait(snapshot: Snapshot) -> None:
    """Sleep until the newest of the files written during a warm-up is older than the racy margin (the next
    warm-up then sees it settled)."""
    newest = max(max(snapshot.entries[p].fp.mtime_ns, snapshot.entries[p].fp.ctime_ns) for p in snapshot.dirty)
    time.sleep(max(0.0, (newest + RACY_MARGIN_NS - time.time_ns()) / 1e9))


class Level1:
    """The template's policy (module docstring) for its ForkServer, with `link`, the socketpair to level 0."""

    level = 1

    def __init__(self, spec: Spec, link: socket.socket | None, inherited: Snapshot | None = None) -> None:
        self.spec = spec
        self.link = link
        self.checkpoint = Checkpoint()
        self.server = ForkServer(spec, self)
        #: level 0's snapshot: the files of modules level 0 imported keep level 0's fingerprints, taken when
        #: those modules were loaded (an edit before this warm-up is a change)
        self.inherited = inherited
        #: files changed during the warm-up (another build is due, Spec.dirty_retries), None if none did
        self.dirty_reason: str | None = None
        #: why level 0 should build another level 1 (asked in the next tick), None if nothing is wrong
        self.rebuild_reason: str | None = None
        #: why a re-warm is due (a served run found changed files), None if none is
        self.rewarm_due: str | None = None
        #: when this template asked level 0 for a re-warm or a rebuild (monotonic), None if it did not
        self.asked_rebuild: float | None = None
        #: when the memory limit was last checked (monotonic; at most once a second)
        self.memory_checked = 0.0

    # ---- warm-up ----------------------------------------------------------------------------------------
    def warm(self) -> None:
        """Import the project as pytest's collection would (warmup.py) and take the checkpoint."""
        import pytest  # noqa: F401

        cp = self.checkpoint
        os.chdir(self.spec.cwd)
        pre_path = list(sys.path)
        pre_filters = list(warnings.filters)
        pre_modules = set(sys.modules)
        started_ns = time.time_ns()
        t0 = time.perf_counter()
        args = [*self.spec.warm_args, "-p", "no:fastcollect", "-o", f"cache_dir={self.server.files.cache_dir}"]
        log.info("warming: %s (cwd %s)", " ".join(args), self.spec.cwd)
        result: WarmResult | None = None
        cp.rng.start()
        try:
            try:
                result = warm_imports(args)
            except (AttributeError, TypeError, ImportError) as exc:
                log.warning("import-only warm-up unavailable (%s): using a --collect-only session", exc)
                result = warm_session(args)
        except BaseException as exc:  # noqa: BLE001 - a failed warm-up still serves (children re-import)
            self.server.counters.last_error = f"warm-up raised {type(exc).__name__}: {exc}"
            log.exception("warm-up raised")
        cp.rng.finish()
        cp.seconds = time.perf_counter() - t0
        cp.result = result = result if result is not None else WarmResult("failed")
        cp.warnings_filters = pre_filters
        warnings.filters[:] = pre_filters
        cp.sys_path_added = [p for p in sys.path if p not in pre_path]
        cp.snapshot = snap = Snapshot(
            self.spec.rootdir,
            sys.modules,
            result.configure_modules - pre_modules,
            config_candidates(self.spec.rootdir, self.spec.cwd, result.inipath),
            started_ns,
            [os.path.abspath(p or ".") for p in sys.path],
            test_files=list(result.test_modules),
            inherited=self.inherited,
            edges=held_modules(sys.modules, result.log.events if result.log is not None else None),
        )
        if snap.dirty and self.spec.dirty_retries < MAX_DIRTY_RETRIES:
            # Files written while (or just before) they were imported: what the template holds may be older
            # than the file. Warm again once they are older than the margin; the cap keeps a file that
            # changes all the time from looping forever.
            dirty_wait(snap)
            self.dirty_reason = f"{len(snap.dirty)} files changed during the warm-up"
            return
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if result.method == "imports" and self.spec.files_digest and result.files_digest != self.spec.files_digest:
            # the warm-up walked other test files than the run that started it: serving would give runs other
            # imports than a plain run; no rebuild loop either: level 0 serves runs until one finds other files
            cp.state, cp.state_reason = "mismatch", "the warm-up found other test files than its starter's run"
        elif alive:
            cp.state, cp.state_reason = "not forkable", f"threads alive after warming: {', '.join(alive)}"
        else:
            cp.state = "ready"
        log.info("warm in %.2fs (%s): %d test files imported, %d failed, %d modules held (%d project files), "
                 "state %s %s", cp.seconds, result.method, result.imported, result.failed, len(sys.modules),
                 snap.project_file_count, cp.state, cp.state_reason)
        gc.collect()
        gc.freeze()  # warm objects are never collected: fewer copy-on-write pages in the children
        cp.rss_kib = rss_kib()

    def carry_counters(self) -> None:
        """A successor continues its predecessor's request counters (status counts since the daemon started,
        across re-warms): asked just before the socket changes hands."""
        from .client import NotServed, ask

        try:
            prior = ask(self.server.files, "status", timeout=2.0)
        except NotServed:
            return
        counters = self.server.counters
        for name in ("served", "refused", "rejected", "killed"):
            value = prior.get(name)
            if isinstance(value, int):
                setattr(counters, name, getattr(counters, name) + value)

    # ---- the channel to level 0 -------------------------------------------------------------------------
    def tell(self, message: channel.Message, fds: list[int] | None = None) -> bool:
        """Send `message` (channel.py; and `fds`) to level 0; False if there is no level 0 to tell."""
        if self.link is None:
            return False
        try:
            self.link.setblocking(True)
            self.link.settimeout(5.0)
            protocol.send(self.link, message.frame(), fds or ())
            return True
        except OSError as exc:
            log.warning("level 0 unreachable (%s)", exc)
            return False

    def channels(self) -> list[socket.socket]:
        return [self.link] if self.link is not None else []

    def channel_event(self, sock: socket.socket) -> None:
        """Level 0 closed its end (it exited): nobody can rebuild this template; stop. (A reply that came
        after its request timed out is read and discarded.)"""
        try:
            sock.setblocking(False)
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:
                sock.setblocking(True)
                _, fds = protocol.recv(sock, deadline=time.monotonic() + 1.0, max_fds=1 + protocol.MAX_FDS)
                for fd in fds:
                    os.close(fd)
                return
            except (OSError, EOFError, protocol.ProtocolError):
                pass
        log.warning("level 0 went away: exiting")
        self.link = None
        self.server.stopping = True

    def leaving(self, reason: str) -> None:
        self.tell(channel.Stop(reason))

    def reload(self) -> None:
        if not self.tell(channel.Restart("reload requested")):
            self.rebuild_reason = "reload requested"

    def _files_digest(self) -> str:
        result = self.checkpoint.result
        return result.files_digest if result is not None else self.spec.files_digest

    def _ask_rebuild(self, reason: str) -> None:
        """Ask level 0 to take the socket back and build a new level 1 (this one serves until it does)."""
        if self.asked_rebuild is not None:
            return
        self.asked_rebuild = time.monotonic()
        log.info("asking level 0 for a rebuild: %s", reason)
        self.tell(channel.Rebuild(reason, self._files_digest(), asdict(self.server.counters)))

    def _forward(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, reason: str,
                 files_digest: str | None = None, fresh: bool = False) -> bool:
        """Pass the connection and the client's fds to level 0 (Forward; `fresh`: this level 1 stays, no
        rebuild). False, after refusing the run, when there is no level 0 to take it."""
        message = channel.Forward(reason, files_digest, worker, request, asdict(self.server.counters), fresh)
        if self.tell(message, [conn.fileno(), *fds]):
            log.info("run handed to level 0: %s", reason)
            if fresh:  # served by this daemon all the same (status counts the daemon's requests)
                self.server.counters.served += 1
            for fd in fds:
                os.close(fd)
            conn.close()
            return True
        self.server.refuse(conn, fds, reason)
        return False

    def _unusable(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool, reason: str,
                  files_digest: str | None) -> None:
        """This template cannot serve the run (`reason`): hand it to level 0, which serves it from its own
        state and builds a new level 1 (`files_digest`: the test files the next warm-up must find, None for
        the same). Without a level 0 the client runs locally."""
        if self._forward(conn, request, fds, worker, reason, files_digest=files_digest):
            self.asked_rebuild = self.asked_rebuild or time.monotonic()
        else:
            self.rebuild_reason = reason

    # ---- runs -------------------------------------------------------------------------------------------
    def admit(self, conn: socket.socket, request: dict[str, Any], fds: list[int], worker: bool) -> Plan | None:
        """The evictions for a run this template can serve, or None once it has handed the run on or
        refused it (a test file added or removed, a stale conftest or config file: level 0 serves it). An
        early hand-off (../early.py) is admitted only by a ready template whose held files are fresh: its run
        child checks the rest (fresh, test files, key) in pytest's configuration, and anything else is
        refused, not handed to level 0: the client then starts pytest and asks as usual."""
        early = request["type"] == "early"
        cp = self.checkpoint
        if not early:
            fresh = request.get("fresh") or (WORKER_FRESH if worker else None)
            if fresh:
                # a tool in the run measures from its start (coverage), or an xdist worker: the project must
                # be imported in the run, so level 0 serves it; this level 1 stays as it is
                self._forward(conn, request, fds, worker, str(fresh), fresh=True)
                return None
            if not worker and cp.state == "ready" and cp.result is not None and cp.result.method == "imports" and (
                request.get("files_digest") != cp.result.files_digest
            ):
                # a test file was added or removed since the warm-up: a plain run would import another set of
                # files; level 0 serves it and warms a new level 1 with the same arguments, expecting these
                self._unusable(conn, request, fds, worker, "test files added or removed since the warm-up",
                               str(request.get("files_digest") or ""))
                return None
        if not cp.ready:
            reason = f"early hand-off: template {cp.state}" if early else f"template {cp.state}: {cp.state_reason}"
            self.server.refuse(conn, fds, reason)
            return None
        assert cp.snapshot is not None
        plan = cp.snapshot.plan(sys.modules)
        if plan.refuse:
            if early:
                self.server.refuse(conn, fds, f"early hand-off: {plan.refuse}")
            else:
                self._unusable(conn, request, fds, worker, plan.refuse, None)
            return None
        return plan

    def forked(self, pid: int, request: dict[str, Any], worker: bool, plan: Plan) -> None:
        if plan.changed:
            names = ", ".join(os.path.relpath(p, self.spec.rootdir) for p in plan.changed[:3])
            more = f" and {len(plan.changed) - 3} more" if len(plan.changed) > 3 else ""
            self.rewarm_due = f"{len(plan.changed)} changed file{'s' if len(plan.changed) != 1 else ''} ({names}{more})"

    def after_request(self) -> None:
        pass

    def level_note(self) -> str:
        return ""

    # ---- each turn --------------------------------------------------------------------------------------
    def tick(self) -> None:
        """A rebuild that is due is asked for (without a level 0: stop); a re-warm that is due and debounced
        is asked for; an idle template over the memory limit asks for a rebuild."""
        server = self.server
        if self.rebuild_reason is not None:
            reason, self.rebuild_reason = self.rebuild_reason, None
            if self.link is None:
                server.stopping = True
                return
            self._ask_rebuild(reason)
        busy = server.runs or self.asked_rebuild is not None or server.handing_over
        if busy or server.stopping:
            return
        if self.rewarm_due is not None and self.checkpoint.ready:
            if time.monotonic() - server.last_run_at >= REWARM_DEBOUNCE:
                reason, self.rewarm_due = self.rewarm_due, None
                assert self.checkpoint.snapshot is not None
                if self.checkpoint.snapshot.changed_paths():  # (not changed back since)
                    if self.tell(channel.Rewarm(f"re-warm: {reason}", self._files_digest())):
                        self.asked_rebuild = time.monotonic()
                        log.info("re-warm requested from level 0 (%s)", reason)
                return
        now = time.monotonic()
        if now - self.memory_checked >= 1.0:
            self.memory_checked = now
            reason = memory_restart_reason(rss_kib(), self.checkpoint.rss_kib, self.spec.max_memory_mib)
            if reason is not None:
                log.info("%s: asking for a rebuild", reason)
                self.rebuild_reason = reason

    def idle(self) -> bool:
        return self.spec.idle_timeout > 0 and time.monotonic() - self.server.last_activity > self.spec.idle_timeout

    def handed_over(self) -> bool:
        """True once its runs are done and the requests that connected before the hand-over have arrived."""
        if self.server.runs or self.server.pending:
            return False
        log.info("handed over to the successor template: exiting")
        return True

    def other_children(self) -> bool:
        return False

    def child_ended(self, pid: int, status: int) -> None:
        pass

    # ---- status -----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Both levels' fields: "pid" is the daemon's (level 0's), "level1" this template, "level0" as level 0
        answers over the channel; a successor level 0 is building shows as the re-warm."""
        cp = self.checkpoint
        out: dict[str, Any] = {
            "rewarm": f"due: {self.rewarm_due}" if self.rewarm_due else "-",
            "level1": {"pid": os.getpid(), "state": cp.state, "uptime": time.time() - self.server.started,
                       "started_because": self.spec.reason, "warm_seconds": round(cp.seconds, 3)},
        }
        base: dict[str, Any] | None = None
        if self.link is not None:
            try:
                self.link.settimeout(2.0)
                protocol.send(self.link, channel.Status().frame())
                base, _ = protocol.recv(self.link, deadline=time.monotonic() + 2.0)
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


def run_level1(spec: Spec, link: socket.socket, inherited: Snapshot | None = None) -> int:
    """The life of a level-1 template, in a process forked from level 0 (level0.Level0.build): warm the
    project, take the socket over from `spec.successor_of` (level 0 or the level 1 it succeeds) and serve.
    One that is not ready never takes over: it tells level 0 why (a warm-up that saw files change asks for
    another build) and exits, and level 0 goes on serving runs itself."""
    runtime.set_role("template")
    level1 = Level1(spec, link, inherited)
    server = level1.server
    try:
        level1.warm()
        if level1.dirty_reason is not None:
            level1.tell(channel.Rebuild(level1.dirty_reason, spec.files_digest, None, spec.dirty_retries + 1))
            return 0
        cp = level1.checkpoint
        if cp.state != "ready":
            log.warning("level 1 %s (%s): not taking over", cp.state, cp.state_reason)
            level1.tell(channel.NotReady(cp.state, cp.state_reason))
            return 1
        server.bind(handover=True, before_rename=level1.carry_counters)
        # the holder was level 0 (our parent) or the level 1 we succeed (our sibling): not a reused pid
        if spec.successor_of == os.getppid() or parent_of(spec.successor_of) == os.getppid():
            try:
                os.kill(spec.successor_of, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        level1.tell(channel.Holding())
        log.info("level 1 pid %d took over from pid %d", os.getpid(), spec.successor_of)
        server.serve()
    except Exception:  # noqa: BLE001
        log.exception("level 1 failed")
        server.close_listener()
        return 1
    log.info("level 1 pid %d exits", os.getpid())
    return 0
