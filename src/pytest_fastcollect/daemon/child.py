"""One run in a child forked from the template: take the client's terminal, cwd, environment and argv,
evict stale modules, run pytest's console entry point (or, for an xdist worker, the code execnet gave the
launcher: daemon/worker.py), report the exit code, leave.

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

from . import protocol, runtime

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


def _stream(fd: int, info: dict[str, Any] | None, writing: bool) -> Any:
    if info is None:  # the client had no such stream: Python sets sys.stdX to None then
        return None
    stream = open(  # noqa: SIM115 - lives as sys.stdX until the child exits
        fd,
        "w" if writing else "r",
        encoding=info.get("encoding") or "utf-8",
        errors=info.get("errors") or "strict",
        closefd=False,
    )
    stream.reconfigure(
        line_buffering=bool(info.get("line_buffering")), write_through=bool(info.get("write_through"))
    )
    return stream


def _take_stdio(fds: list[int], stdio: list[dict[str, Any] | None]) -> None:
    for target, fd in enumerate(fds[:3]):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    _KEEP.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__])
    sys.stdin = sys.__stdin__ = _stream(0, stdio[0], writing=False)
    sys.stdout = sys.__stdout__ = _stream(1, stdio[1], writing=True)
    sys.stderr = sys.__stderr__ = _stream(2, stdio[2], writing=True)


def _reset_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at startup


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001
            pass


def run(conn: socket.socket, request: dict[str, Any], fds: list[int], ctx: ChildContext) -> NoReturn:
    """Serve `request` (a validated "run" message) in this child; `fds` are the client's stdin, stdout and
    stderr. Sends {"type": "started"} and then {"type": "exit", "code": N} on `conn`, and exits with N.
    If setting up fails, nothing is written to the client's terminal: the failure is logged, the client is
    told "refused" and runs locally."""
    try:
        _setup(request, fds, ctx)
        protocol.send(conn, {"type": "started", "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001
        logging.getLogger("pytest_fastcollect.daemon").exception("run child failed to set up")
        try:
            protocol.send(conn, {"type": "refused", "reason": f"child set-up failed: {type(exc).__name__}: {exc}"})
        except OSError:
            pass
        os._exit(INTERNAL_ERROR)
    try:
        code = _run_worker(request["argv"]) if ctx.worker else _run_pytest()
    except BaseException:  # noqa: BLE001 - report, never return into the template's loop
        try:
            traceback.print_exc()
        except Exception:  # noqa: BLE001
            pass
        code = INTERNAL_ERROR
    _flush()
    try:
        atexit._run_exitfuncs()  # what a normal interpreter exit would run (os._exit below skips it)
    except BaseException:  # noqa: BLE001
        pass
    _flush()
    try:
        protocol.send(conn, {"type": "exit", "code": code})
    except OSError:
        pass
    os._exit(code)


def _setup(request: dict[str, Any], fds: list[int], ctx: ChildContext) -> None:
    os.setpgid(0, 0)  # the client forwards signals to this process group
    _reset_signals()
    for sock in ctx.close_sockets:
        os.close(sock.detach())  # detach: the object must not close the number again later
    for fd in ctx.close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    _take_stdio(fds, request["stdio"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-c"] if ctx.worker else list(request["argv"])  # what `python -c CODE` sets
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
    runtime.set_role("child")
    runtime.set_served(runtime.ServedRun(ctx.daemon_pid, ctx.warm_age, len(ctx.evict), ctx.changed, ctx.socket,
                                         ctx.key, ctx.worker, ctx.level, ctx.level_note))


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
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def _run_pytest() -> int:
    from .client import console_entry

    try:
        return int(console_entry()())
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130


__all__ = ["ChildContext", "run"]
