"""The process state a run inherits from the command that started it: captured by the client, given to the
run child.

A plain `pytest` is an exec of the caller's command: it inherits the caller's open file descriptors (those
without close-on-exec: 0, 1, 2 and any other the caller passed, e.g. a make jobserver's or `3>file`), the
signals the caller ignores (nohup: SIGHUP; a background job of a script: SIGINT) and its blocked-signal
mask, the resource limits, the nice value, the CPU affinity and the umask; then the interpreter builds
sys.stdin/stdout/stderr from fds 0-2 (`create_stdio` in CPython's Python/pylifecycle.c: a FileIO named
"<stdout>", buffered unless `-u`, in a TextIOWrapper with newline "\\n" and mode "w"), sets sys.orig_argv
and runs `__main__` (`python -m pytest`: runpy's `_run_module_as_main("pytest")`; the `pytest` script: the
script file). A served run is a fork of the template instead, so the child rebuilds all of that from what
the client captured (`capture()`, `apply()`). What it cannot rebuild (a higher hard limit or a lower nice
value than the daemon's, a signal handler it does not know) makes the run local: `apply()` raises
Unservable before the child has written anything.

Shape of the captured state (JSON, part of the run request; validated by `problem()`):
  {"fds": [target fd numbers of the passed fds, in order], "stdio": [3 x stream or None],
   "signals": {signal number: "ign" | "dfl" | "int" | "py:<module>.<qualname>"}, "mask": [signal numbers],
   "rlimits": {name: [soft, hard]}, "nice": int, "affinity": [cpu numbers] | None, "umask": int,
   "orig_argv": [str], "main": {"spec": module name | None, "file": path | None}}
  stream: {"encoding", "errors", "line_buffering", "write_through", "buffered", "name", "mode"}
"""

from __future__ import annotations

import fcntl
import io
import os
import signal
import sys
TYPE_CHECKING = False  # typing is not imported at run time: the early hand-off pays for each import
if TYPE_CHECKING:
    from typing import Any, Sequence

#: File descriptors besides 0, 1 and 2 a run may inherit; a caller passing more runs locally.
MAX_INHERITED = 64
#: Signals whose disposition cannot be read or set.
_UNSETTABLE = {signal.SIGKILL, signal.SIGSTOP}
_STREAM_NAMES = ("<stdin>", "<stdout>", "<stderr>")


class Unservable(Exception):
    """This process state cannot be given to a forked child; the message says why (the run goes local)."""


# ---- client side -----------------------------------------------------------------------------------------


def inherited_fds(exclude: Sequence[int] = ()) -> list[int]:
    """Open fds without FD_CLOEXEC (what an exec of this process would pass on), ascending, less `exclude`."""
    out: list[int] = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(3)]
    for name in names:
        fd = int(name)
        if fd in exclude:
            continue
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                out.append(fd)
        except OSError:  # closed meanwhile (the listing's own fd)
            continue
    return sorted(out)


def describe_stream(stream: Any, fd: int) -> dict[str, Any] | None:
    """How the interpreter built sys.stdin/stdout/stderr (`fd` 0, 1, 2), or None when it has no stream.
    Raises Unservable when the stream is not the interpreter's (replaced by a wrapper or another fd)."""
    if stream is None:
        return None
    buffer = getattr(stream, "buffer", None)
    raw = getattr(buffer, "raw", buffer)
    if not isinstance(stream, io.TextIOWrapper) or not isinstance(raw, io.FileIO):
        raise Unservable(f"sys.{('stdin', 'stdout', 'stderr')[fd]} is a {type(stream).__name__}, not the interpreter's")
    try:
        if stream.fileno() != fd:
            raise Unservable(f"sys.{('stdin', 'stdout', 'stderr')[fd]} is on fd {stream.fileno()}")
    except ValueError:
        raise Unservable(f"sys.{('stdin', 'stdout', 'stderr')[fd]} is closed") from None
    name = getattr(raw, "name", fd)
    return {
        "encoding": stream.encoding,
        "errors": stream.errors,
        "line_buffering": bool(stream.line_buffering),
        "write_through": bool(stream.write_through),
        "buffered": buffer is not raw,
        "name": name if isinstance(name, str) else None,
        "mode": getattr(stream, "mode", "r" if fd == 0 else "w"),
    }


def _handler_name(handler: Any) -> str:
    if handler is signal.SIG_IGN:
        return "ign"
    if handler is signal.SIG_DFL or handler is None:
        return "dfl"
    if handler is signal.default_int_handler:
        return "int"
    return f"py:{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


def signal_dispositions() -> dict[int, str]:
    """Signal number -> "ign", "dfl", "int" (Python's default SIGINT handler) or "py:<name>"."""
    out: dict[int, str] = {}
    for sig in signal.valid_signals():
        if sig in _UNSETTABLE:
            continue
        try:
            out[int(sig)] = _handler_name(signal.getsignal(sig))
        except (OSError, ValueError):
            continue
    return out


def _rlimits() -> dict[str, list[int]]:
    import resource

    out: dict[str, list[int]] = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            try:
                out[name] = list(resource.getrlimit(getattr(resource, name)))
            except (OSError, ValueError):
                pass
    return out


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main_module() -> dict[str, Any]:
    """What `__main__` is: the module run by `python -m` (its spec name) or the script file."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    file = getattr(main, "__file__", None)
    return {"spec": getattr(spec, "name", None), "file": file if isinstance(file, str) else None}


def capture(exclude: Sequence[int] = ()) -> tuple[dict[str, Any], list[int]]:
    """(state, fds to pass) of this process, excluding fds `exclude` (the client's own socket). Raises
    Unservable when something cannot be passed on."""
    fds = inherited_fds(exclude)
    extra = [fd for fd in fds if fd > 2]
    if len(extra) > MAX_INHERITED:
        raise Unservable(f"{len(extra)} inherited file descriptors (at most {MAX_INHERITED} are passed)")
    stdio = [describe_stream(s, fd) if fd in fds else None
             for fd, s in enumerate((sys.stdin, sys.stdout, sys.stderr))]
    try:
        affinity: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    state = {
        "fds": fds,
        "stdio": stdio,
        "signals": {str(k): v for k, v in signal_dispositions().items()},
        "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "rlimits": _rlimits(),
        "nice": os.nice(0),
        "affinity": affinity,
        "umask": umask(),
        "orig_argv": list(getattr(sys, "orig_argv", sys.argv)),
        "main": main_module(),
    }
    return state, fds


def ignored_signals(state: dict[str, Any] | None = None) -> set[int]:
    """Signals the caller ignores (this process's dispositions when `state` is None)."""
    signals = signal_dispositions() if state is None else {int(k): v for k, v in state["signals"].items()}
    return {sig for sig, how in signals.items() if how == "ign"}


# ---- daemon side -----------------------------------------------------------------------------------------


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def problem(state: Any, nfds: int) -> str | None:
    """Why `state` (a run request's "process" field, with `nfds` fds passed) is malformed, or None."""
    if not isinstance(state, dict):
        return "process is not an object"
    fds = state.get("fds")
    if not _is_int_list(fds) or len(set(fds)) != len(fds) or any(fd < 0 or fd > 1 << 20 for fd in fds):
        return "process.fds is not a list of distinct fd numbers"
    if len(fds) != nfds:
        return f"{nfds} file descriptors sent, {len(fds)} described"
    stdio = state.get("stdio")
    if not isinstance(stdio, list) or len(stdio) != 3 or not all(s is None or isinstance(s, dict) for s in stdio):
        return "process.stdio is not a list of 3 objects"
    for i, s in enumerate(stdio):
        if s is not None and i not in fds:
            return f"process.stdio[{i}] describes a stream on a closed fd"
        if s is not None and not all(isinstance(s.get(k), str) for k in ("encoding", "errors", "mode")):
            return f"process.stdio[{i}] lacks encoding, errors or mode"
    signals = state.get("signals")
    if not isinstance(signals, dict) or not all(isinstance(k, str) and k.isdigit() and isinstance(v, str)
                                                for k, v in signals.items()):
        return "process.signals is not a map of signal numbers to dispositions"
    if not _is_int_list(state.get("mask")):
        return "process.mask is not a list of signal numbers"
    rlimits = state.get("rlimits")
    if not isinstance(rlimits, dict) or not all(isinstance(k, str) and _is_int_list(v) and len(v) == 2
                                                for k, v in rlimits.items()):
        return "process.rlimits is not a map of names to [soft, hard]"
    if not isinstance(state.get("nice"), int):
        return "process.nice is not an int"
    if state.get("affinity") is not None and not _is_int_list(state.get("affinity")):
        return "process.affinity is not a list of cpu numbers"
    mask = state.get("umask")
    if not isinstance(mask, int) or not 0 <= mask <= 0o777:
        return "process.umask is not an int in 0..0o777"
    argv = state.get("orig_argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return "process.orig_argv is not a list of strings"
    main = state.get("main")
    if not isinstance(main, dict) or not all(main.get(k) is None or isinstance(main.get(k), str) for k in ("spec", "file")):
        return "process.main is not {spec, file}"
    return None


def _open_stream(fd: int, desc: dict[str, Any]) -> io.TextIOWrapper:
    """A standard stream as create_stdio (Python/pylifecycle.c) builds it from `desc`."""
    writing = fd != 0
    buffering = -1 if desc.get("buffered", True) else 0
    buffer = io.open(fd, "wb" if writing else "rb", buffering, closefd=False)  # noqa: SIM115 - lives as sys.stdX
    raw = getattr(buffer, "raw", buffer)
    raw.name = desc.get("name") or _STREAM_NAMES[fd]
    stream = io.TextIOWrapper(buffer, encoding=desc["encoding"], errors=desc["errors"], newline="\n",
                              line_buffering=bool(desc.get("line_buffering")),
                              write_through=bool(desc.get("write_through")))
    stream.mode = desc["mode"]  # type: ignore[misc] - create_stdio sets it as an attribute too
    return stream


def install_fds(received: list[int], targets: list[int], keep: Sequence[int] = ()) -> None:
    """Put the received fds at the caller's numbers (`targets`, the same order) and close 0, 1 or 2 when the
    caller had them closed. A target held by anything but the template's /dev/null stdio (fds 0-2) or
    `keep` raises Unservable: it would be overwritten."""
    if not targets:
        ceiling = 3
    else:
        ceiling = max(max(targets), 2) + 1
    for target in targets:
        if target > 2 and target not in received and target not in keep:
            try:
                os.fstat(target)
            except OSError:
                continue
            raise Unservable(f"the caller's fd {target} is in use in the template")
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, ceiling) for fd in received]
    for fd in received:
        os.close(fd)
    for temp, target in zip(moved, targets):
        os.dup2(temp, target, inheritable=True)
        os.close(temp)
    for fd in range(3):
        if fd not in targets:
            try:
                os.close(fd)
            except OSError:
                pass


def install_stdio(stdio: list[dict[str, Any] | None], keep: list[Any]) -> None:
    """sys.stdin/stdout/stderr (and sys.__stdX__) rebuilt on fds 0-2; the template's old stream objects go to
    `keep` (finalizing one would close fd 0, 1 or 2, which are the caller's now)."""
    keep.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__])
    streams = [None if desc is None else _open_stream(fd, desc) for fd, desc in enumerate(stdio)]
    sys.stdin = sys.__stdin__ = streams[0]  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = streams[1]  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = streams[2]  # type: ignore[misc]


def install_signals(signals: dict[str, str], mask: list[int], startup: dict[int, Any]) -> None:
    """Every disposition as the caller has it; a Python handler only if the template started with the same
    one (`startup`: its own dispositions at start-up, e.g. a sitecustomize's). The mask is set last."""
    wanted = {int(k): v for k, v in signals.items()}
    for sig in signal.valid_signals():
        if sig in _UNSETTABLE:
            continue
        how = wanted.get(int(sig), "dfl")
        if how == "ign":
            handler: Any = signal.SIG_IGN
        elif how == "dfl":
            handler = signal.SIG_DFL
        elif how == "int":
            handler = signal.default_int_handler
        elif _handler_name(startup.get(int(sig))) == how:
            handler = startup[int(sig)]
        else:
            raise Unservable(f"signal {int(sig)} has a handler the daemon does not have ({how})")
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def install_limits(state: dict[str, Any]) -> None:
    """Resource limits, nice value and CPU affinity as the caller has them. Raises Unservable where the
    child cannot get there (a hard limit above the daemon's, a lower nice value, other CPUs)."""
    import resource

    for name, (soft, hard) in state["rlimits"].items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        current = resource.getrlimit(which)
        if [soft, hard] == list(current):
            continue
        if current[1] != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > current[1]):
            raise Unservable(f"{name} hard limit {hard} is above the daemon's {current[1]}")
        try:
            resource.setrlimit(which, (soft, hard))
        except (OSError, ValueError) as exc:
            raise Unservable(f"{name}: {exc}") from None
    delta = int(state["nice"]) - os.nice(0)
    if delta < 0:
        raise Unservable(f"nice value {state['nice']} is below the daemon's")
    if delta:
        os.nice(delta)
    affinity = state.get("affinity")
    if affinity is not None and sorted(os.sched_getaffinity(0)) != affinity:
        try:
            os.sched_setaffinity(0, affinity)
        except OSError as exc:
            raise Unservable(f"CPU affinity {affinity}: {exc}") from None
    os.umask(int(state["umask"]))


def run_main(main: dict[str, Any], fallback: Any) -> Any:
    """Run pytest the way the caller's interpreter did: `python -m NAME` through runpy's
    `_run_module_as_main` (a fresh `__main__`), the `pytest` script through runpy.run_path, anything else by
    calling `fallback()` (pytest's console entry point) in a fresh `__main__`. Returns what it returns;
    SystemExit propagates."""
    import builtins
    import runpy
    import types

    fresh = types.ModuleType("__main__")
    fresh.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = fresh
    spec, file = main.get("spec"), main.get("file")
    if spec:
        name = spec[: -len(".__main__")] if spec.endswith(".__main__") else spec
        run_as_main = getattr(runpy, "_run_module_as_main", None)
        if run_as_main is not None:  # sys.argv[0] "-m": an early hand-off, whose argv runpy had not set yet
            return run_as_main(name, alter_argv=sys.argv[:1] == ["-m"])
        return runpy.run_module(name, run_name="__main__", alter_sys=True)
    if file and os.path.isfile(file):
        return runpy.run_path(file, run_name="__main__")
    return fallback()
