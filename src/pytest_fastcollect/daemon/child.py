"""One run in a child forked from the template: take the client's process state (procstate.py: its fds,
stdio, signals, limits), cwd, environment and argv, evict stale modules, run pytest as the client's
interpreter would (or, for an xdist worker, the code execnet gave the launcher: daemon/worker.py), leave
with the run's exit code (the template reports it to the client when it reaps the child).

Nothing here returns: run() ends with os._exit(). It runs after fork() in a process whose only thread is
this one.
"""

from __future__ import annotations

import atexit
import importlib
import linecache
import logging
import os
import signal
import socket
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, NoReturn

from . import procstate, protocol, runclock, runtime
from .handoff import flush_stdio

#: Internal error: pytest's ExitCode.INTERNAL_ERROR.
INTERNAL_ERROR = 3
#: The template's original standard streams (they write to /dev/null). Kept referenced: if one were
#: finalized it would close fd 0/1/2, which are the client's terminal in the child.
_KEEP: list[Any] = []


@dataclass
class ChildContext:
    """What the template hands to a child besides the request: `close_sockets` (the listener, other runs'
    connections) and `close_fds` (the lock file), `warnings_filters` and `sys_path_added` recorded at warm time, `evict` (module names),
    `changed` (paths), `daemon_pid`, `warm_age` (seconds)."""

    close_sockets: list[socket.socket]
    close_fds: list[int]
    warnings_filters: list[Any]
    sys_path_added: list[str]
    evict: list[str]
    changed: int
    daemon_pid: int
    warm_age: float
    warm: Any = None  # warmup.WarmResult
    socket: str = ""  # the daemon's socket and key: a run that starts xdist workers has them forked here too
    key: str = ""
    worker: bool = False  # an xdist worker (request argv: the interpreter arguments execnet passed)
    level: int = 1  # forked from level 1 (the warm project) or level 0 (pytest and plugins only)
    level_note: str = ""  # level 0: why level 1 did not serve this run
    fresh: bool = False  # served from level 0 for a tool that measures from its start (measuring.py)
    folder: str = ""  # the socket folder (the exit file: exit_file())
    rng: Any = None  # rngstate.SeedTracker of the warm-up
    log_path: str = ""  # the daemon's log (a child that fails to set up writes why there)
    early: bool = False  # an early hand-off (../early.py): the run decides in its configuration (hold.py)
    files_digest: str = ""  # the warm-up's test files (an early run's configuration must find the same)


def _exit_code(code: object) -> int:
    """What the interpreter would make of SystemExit(code) (Python's handle_system_exit)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code) & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def run(conn: socket.socket, request: dict[str, Any], fds: list[int], ctx: ChildContext) -> NoReturn:
    """Serve `request` (a validated "run" message) in this child; `fds` are the caller's inherited fds
    (request["process"]["fds"] says at which numbers). Sends {"type": "started"} on `conn` and closes it (a
    test sees no fd of the daemon's), runs, and exits with the run's exit code, which the template reports
    to the client when it reaps this process. If setting up fails, nothing was written to the client's
    terminal: the client is told "refused" and runs locally. An early hand-off (ctx.early) is told
    "started" or "refused" by its run's configuration instead (hold.py)."""
    hold = None
    runclock.start(request.get("clock"), ctx.early, ctx.level, list(request["argv"]))
    try:
        conn = _relocate(conn)
        _setup(request, fds, ctx)
        if ctx.early:
            from .hold import EarlyHold

            hold = EarlyHold(conn, ctx.key, ctx.files_digest, request["interpreter"], exit_file(ctx.folder, os.getpid()))
            hold.divert()
            assert runtime.SERVED is not None
            runtime.SERVED.early = hold
        else:
            protocol.send(conn, {"type": "started", "pid": os.getpid(), "exit_file": exit_file(ctx.folder, os.getpid())})
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, procstate.Unservable):
            reason = str(exc)
        else:
            reason = f"child set-up failed: {type(exc).__name__}: {exc}"
            _log_failure(ctx)
        try:
            protocol.send(conn, {"type": "refused", "reason": reason})
        except OSError:
            pass
        os._exit(INTERNAL_ERROR)
    if hold is None:
        conn.close()
    interrupted = False
    runclock.mark("main")
    try:
        code = _run_worker(request["argv"]) if ctx.worker else _run_pytest(request["process"]["main"])
    except KeyboardInterrupt:
        interrupted = True
        code = 130
        _print_uncaught()
    except BaseException:  # noqa: BLE001 - as the interpreter does with an uncaught exception
        code = 1
        _print_uncaught()
    if hold is not None and hold.pending:  # pytest ended (a usage error, an exception) before it decided
        hold.refuse("pytest ended before the run was decided")
    flush_stdio()
    try:
        atexit._run_exitfuncs()  # what a normal interpreter exit would run (os._exit below skips it)
    except BaseException:  # noqa: BLE001
        pass
    flush_stdio()
    runclock.mark("end")
    if ctx.folder and ctx.key and not ctx.worker:
        runclock.write(os.path.join(ctx.folder, f"{ctx.key}.last-run.json"))
    _write_exit_file(ctx.folder, code, interrupted)
    if interrupted:  # the interpreter ends an uncaught KeyboardInterrupt by SIGINT (Py_Exit's exit status)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def exit_file(folder: str, pid: int) -> str:
    """Where run `pid` leaves its exit status for its client in case the template died meanwhile (the
    template, which normally reports it, deletes the file when it reaps the run)."""
    return os.path.join(folder, f"exit-{pid}")


def _write_exit_file(folder: str, code: int, interrupted: bool) -> None:
    if not folder:
        return
    try:
        with open(exit_file(folder, os.getpid()), "w", encoding="ascii") as fh:
            fh.write(f"signal {signal.SIGINT}" if interrupted else str(code))
    except OSError:
        pass


def _print_uncaught() -> None:
    """What the interpreter prints for an uncaught exception, without the fork server's frames: the
    traceback starts where a plain run's does (runpy, or the `pytest` script)."""
    kind, value, tb = sys.exc_info()
    ours = {os.path.realpath(__file__), os.path.realpath(procstate.__file__)}
    while tb is not None and os.path.realpath(tb.tb_frame.f_code.co_filename) in ours:
        tb = tb.tb_next
    if value is not None:
        value = value.with_traceback(tb)  # the default hook prints the exception's own __traceback__
    try:
        sys.excepthook(kind, value, tb)
    except BaseException:  # noqa: BLE001
        pass


def _relocate(conn: socket.socket) -> socket.socket:
    """The connection moved to a high fd number (close-on-exec), out of the way of the caller's fds."""
    import fcntl

    high = fcntl.fcntl(conn.fileno(), fcntl.F_DUPFD_CLOEXEC, 1000)
    conn.close()
    return socket.socket(fileno=high)


def _quiet_logging() -> None:
    """The daemon's log handlers closed: their fds are the template's, not the run's."""
    logger = logging.getLogger("pytest_fastcollect.daemon")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.addHandler(logging.NullHandler())


def _log_failure(ctx: ChildContext) -> None:
    if not ctx.log_path:
        return
    try:
        with open(ctx.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"pid {os.getpid()} run child failed to set up:\n{traceback.format_exc()}")
    except OSError:
        pass


def _setup(request: dict[str, Any], fds: list[int], ctx: ChildContext) -> None:
    state = request["process"]
    os.setpgid(0, 0)  # the client forwards signals to this process group
    signal.set_wakeup_fd(-1)  # the template's SIGCHLD wake-up pipe (its fds are in ctx.close_fds)
    for sock in ctx.close_sockets:
        os.close(sock.detach())  # detach: the object must not close the number again later
    for fd in ctx.close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _quiet_logging()
    os.chdir(request["cwd"])
    procstate.install_limits(state)
    procstate.install_fds(fds, state["fds"])
    procstate.install_stdio(state["stdio"], _KEEP)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-c"] if ctx.worker else list(request["argv"])  # what `python -c CODE` sets
    sys.orig_argv = list(state["orig_argv"])
    client_path = list(request["sys_path"])
    sys.path[:] = [p for p in ctx.sys_path_added if p not in client_path] + client_path
    warnings.filters[:] = ctx.warnings_filters
    mutated = getattr(warnings, "_filters_mutated", None) or getattr(warnings, "_filters_mutated_lock_held", None)
    if mutated is not None:
        mutated()  # the C warnings module caches the filter list's version
    for name in ctx.evict:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    linecache.clearcache()
    warm = ctx.warm
    if warm is not None and warm.log is not None:
        from .replay import Replayer

        objects = {name: sys.modules[name] for name in warm.test_modules.values() if name in sys.modules}
        runtime.set_replayer(Replayer(warm.log, warm.test_modules, set(warm.configure_modules), objects))
    from ..gcpolicy import unfreeze_on_demand

    unfreeze_on_demand()  # the template's gc.freeze(): unseen by tests unless they look (gcpolicy.py)
    if ctx.rng is not None:
        ctx.rng.apply()  # the global random generators as a plain run has them (rngstate.py)
    procstate.install_signals(state["signals"], state["mask"], runtime.STARTUP_SIGNALS)  # last: the mask
    runtime.set_role("child")
    runtime.set_served(runtime.ServedRun(ctx.daemon_pid, ctx.warm_age, len(ctx.evict), ctx.changed, ctx.socket,
                                         ctx.key, ctx.worker, ctx.level, ctx.level_note, ctx.fresh))


def _run_worker(argv: list[str]) -> int:
    """Run `python [-u] [-B] -c CODE` here: CODE (execnet's bootstrap line) in a fresh `__main__` module, as
    the interpreter would; returns the exit code (SystemExit honoured)."""
    import builtins
    import types

    from .worker import worker_code

    code = worker_code(argv)
    assert code is not None  # validated by the template before the fork
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    try:
        exec(compile(code, "<string>", "exec"), main.__dict__)  # noqa: S102 - the interpreter's -c
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _run_pytest(main: dict[str, Any]) -> int:
    """pytest run as the caller's interpreter ran it (procstate.run_main); its exit code."""
    from .client import console_entry

    try:
        result = procstate.run_main(main, console_entry())
    except SystemExit as exc:
        return _exit_code(exc.code)
    return _exit_code(result) if isinstance(result, int) else 0  # a console entry point that returned


__all__ = ["ChildContext", "run"]
