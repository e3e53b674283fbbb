"""What a test can observe of the process it runs in, as one JSON-able dict (the observables probe).

`snapshot()` is called from inside a test (tests/python/test_observables.py writes such a test file into a
project and runs it plain and served). `compare(plain_runs, served_runs, allowed)` then tells, per
observable, whether the served runs differ from the plain ones: a value that is the same in every plain run
must be the same in every served run; a value that differs between plain runs (a random state, the hash
seed) must differ between served runs too. `allowed` names the observables that may differ, each with its
reason: the documented inherent differences of a fork server (docs/how-it-works.md, "What a served run can
tell").

Values are made comparable across processes: pids become relations ("own group leader"), fds become the
kind of file they point at, module sets keep names only.
"""

from __future__ import annotations

import atexit
import gc
import os
import re
import signal
import stat
import sys
import threading
import warnings
from typing import Any, Iterable

#: What a test can tell of a served run, and why (docs/how-it-works.md, "What a served run can tell").
#: Everything else the probe sees must be as in a plain run.
INHERENT = {
    "own_group_leader": "the run leads a process group of its own: the client forwards Ctrl-C and other "
                        "signals to that group (a plain pytest is in its caller's group, or leads a shell job)",
    "controlling_terminal": "the run is in the daemon's session, which has no controlling terminal: "
                            "opening /dev/tty fails (the terminal itself is the caller's, on fds 0-2)",
    "hash_abc": "one hash seed for every run of a daemon (str/bytes hashes and set order repeat between "
                "served runs; PYTHONHASHSEED=random makes runs local)",
    "stack_depth": "the fork server's frames lie under pytest's (16 more; the recursion limit is the same)",
    "cmdline": "/proc/self/cmdline (ps) shows the daemon's command line; sys.argv and sys.orig_argv are the "
               "caller's",
    "modules": "the daemon's own modules and the standard-library modules they use are imported "
               "(MACHINERY_MODULES); every other module is as in a plain run",
}
#: Modules a served process may hold that a plain one does not: pytest-fastcollect's own, and the standard
#: library modules its daemon imports (logging.handlers for its log, sysconfig for the standard library's
#: folders, email.parser for plugin metadata, sqlite3 for the records).
MACHINERY_PREFIXES = ("pytest_fastcollect",)
MACHINERY_MODULES = frozenset({
    "logging.handlers", "pickle", "_pickle", "_compat_pickle", "sysconfig", "email.parser", "email.feedparser",
    "encodings.ascii", "sqlite3", "sqlite3.dbapi2", "_sqlite3", "runpy", "_struct", "struct",
})


def _signals() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sig in sorted(signal.valid_signals()):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        if handler is signal.SIG_DFL:
            text = "SIG_DFL"
        elif handler is signal.SIG_IGN:
            text = "SIG_IGN"
        elif handler is None:
            text = "None (not set from Python)"
        else:
            text = f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        out[name] = text
    return out


def _sigmask() -> list[str]:
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    except (AttributeError, OSError):
        return ["unknown"]
    return sorted(signal.Signals(s).name if s in signal.Signals._value2member_map_ else str(s) for s in blocked)


def _proc_status_field(name: str) -> str | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _rlimits() -> dict[str, Any]:
    import resource

    out: dict[str, Any] = {}
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        try:
            out[name] = list(resource.getrlimit(getattr(resource, name)))
        except (ValueError, OSError):
            pass
    return out


def _fd_kind(fd: int) -> str:
    try:
        st = os.fstat(fd)
    except OSError:
        return "closed"
    mode = st.st_mode
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISCHR(mode):
        target = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else "?"
        return "tty" if os.isatty(fd) else f"char:{target}"
    if stat.S_ISREG(mode):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = "?"
        if "(deleted)" in target or target.startswith("/tmp/") or "/pytest-of-" in target:
            return "file:temporary"
        return f"file:{target}"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def _fds() -> list[str]:
    """The kinds of every open fd (sorted: numbers depend on the order things were opened), each marked
    when a child process would inherit it; the listing's own fd is left out."""
    import fcntl

    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    out = []
    for name in names:
        fd = int(name)
        kind = _fd_kind(fd)
        if kind == "closed":
            continue
        try:
            inheritable = not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        except OSError:
            continue
        out.append(f"{kind}{' (inheritable)' if inheritable else ''}")
    return sorted(out)


def _stream(stream: Any) -> Any:
    if stream is None:
        return None
    out: dict[str, Any] = {"type": type(stream).__name__}
    for attr in ("encoding", "errors", "line_buffering", "write_through", "mode", "name", "newlines"):
        try:
            value = getattr(stream, attr)
        except (AttributeError, ValueError):
            continue
        out[attr] = value if isinstance(value, (str, int, bool, type(None))) else repr(value)
    try:
        out["fileno"] = stream.fileno()
        out["isatty"] = stream.isatty()
    except (AttributeError, ValueError, OSError):
        pass
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        out["buffer"] = type(buffer).__name__
        raw = getattr(buffer, "raw", None)
        if raw is not None:
            out["raw"] = type(raw).__name__
            out["raw_name"] = repr(getattr(raw, "name", None))
    return out


def _ctty() -> str:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        return f"none ({exc.errno})"
    os.close(fd)
    return "yes"


def _trace_hooks() -> dict[str, Any]:
    out: dict[str, Any] = {"trace": repr(sys.gettrace()), "profile": repr(sys.getprofile()),
                           "threading_trace": repr(getattr(threading, "gettrace", lambda: None)()),
                           "threading_profile": repr(getattr(threading, "getprofile", lambda: None)())}
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        out["monitoring"] = [monitoring.get_tool(i) for i in range(6)]
    return out


def _random_state() -> dict[str, Any]:
    import random

    out: dict[str, Any] = {"random": hash(random.getstate())}
    numpy = sys.modules.get("numpy")
    if numpy is not None and "numpy.random" in sys.modules:
        state = numpy.random.get_state(legacy=True)
        out["numpy"] = hash((state[0], bytes(state[1]), state[2]))
    return out


def snapshot() -> dict[str, Any]:
    """What a test can observe of its process (see the module docstring). Call it inside a test."""
    pid = os.getpid()
    faulthandler = sys.modules.get("faulthandler")
    import tempfile

    return {
        "signals": _signals(),
        "sigmask": _sigmask(),
        "rlimits": _rlimits(),
        "umask": _umask(),
        "nice": os.nice(0),
        "own_group_leader": os.getpgrp() == pid,
        "own_session_leader": os.getsid(0) == pid,
        "controlling_terminal": _ctty(),
        "environ": dict(sorted(os.environ.items())),
        "cwd": os.getcwd(),
        "argv": list(sys.argv),
        "orig_argv": list(getattr(sys, "orig_argv", [])),
        "executable": sys.executable,
        "flags": repr(sys.flags),
        "warnoptions": list(sys.warnoptions),
        "xoptions": sorted(sys._xoptions.items()),
        "path": list(sys.path),
        "modules": sorted(sys.modules),
        "threads": sorted(t.name for t in threading.enumerate()),
        "os_threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
        "fds": _fds(),
        "gc_threshold": list(gc.get_threshold()),
        "gc_enabled": gc.isenabled(),
        "gc_freeze_count": gc.get_freeze_count(),
        "gc_garbage": len(gc.garbage),
        "warnings_filters": [repr(f[:3]) + repr(f[4]) for f in warnings.filters],
        "random": _random_state(),
        "hash_abc": hash("abc"),
        "faulthandler": bool(faulthandler is not None and faulthandler.is_enabled()),
        "atexit_callbacks": atexit._ncallbacks(),  # type: ignore[attr-defined]
        "stdin": _stream(sys.__stdin__),
        "stdout": _stream(sys.__stdout__),
        "stderr": _stream(sys.__stderr__),
        "fd_kinds_012": [_fd_kind(0), _fd_kind(1), _fd_kind(2)],
        "recursion_limit": sys.getrecursionlimit(),
        "stack_depth": _stack_depth(),
        "cmdline": _read("/proc/self/cmdline"),
        "switch_interval": sys.getswitchinterval(),
        "int_max_str_digits": sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None,
        "trace_hooks": _trace_hooks(),
        "excepthook": repr(sys.excepthook),
        "unraisablehook": repr(sys.unraisablehook),
        "displayhook": repr(sys.displayhook),
        "breakpointhook": repr(sys.breakpointhook),
        "dont_write_bytecode": sys.dont_write_bytecode,
        "pycache_prefix": sys.pycache_prefix,
        "tempdir": tempfile.gettempdir(),
        "main_module": getattr(sys.modules.get("__main__"), "__spec__", None) is not None,
        "main_file": getattr(sys.modules.get("__main__"), "__file__", None),
        "meta_path": [type(f).__name__ for f in sys.meta_path],
        "path_hooks": [getattr(h, "__qualname__", type(h).__name__) for h in sys.path_hooks],
        "locale": _locale(),
        "time_zone": list(__import__("time").tzname),
        "cap_eff": _proc_status_field("CapEff"),
        "no_new_privs": _proc_status_field("NoNewPrivs"),
        "oom_score_adj": _read("/proc/self/oom_score_adj"),
        "cpus_allowed": _proc_status_field("Cpus_allowed_list"),
    }


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _locale() -> list[Any]:
    import locale

    try:
        return [locale.setlocale(locale.LC_ALL), locale.getpreferredencoding(False)]
    except locale.Error as exc:
        return [f"error: {exc}"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def modules_beyond(served: Iterable[str], plain: Iterable[str]) -> list[str]:
    """Modules a served process holds that a plain one does not, less the daemon's own machinery."""
    plain_set = set(plain)
    return sorted(m for m in set(served) - plain_set
                  if not m.startswith(MACHINERY_PREFIXES) and m not in MACHINERY_MODULES
                  and not m.startswith("_sysconfigdata"))


_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def normalized(value: Any) -> Any:
    """`value` with object addresses (`0x7f...` in reprs) blanked: they differ between any two processes."""
    if isinstance(value, str):
        return _ADDRESS.sub("0x?", value)
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    return value


def compare(plain: list[dict[str, Any]], served: list[dict[str, Any]], allowed: Iterable[str] | None = None) -> list[str]:
    """Differences between runs of the probe on each side (at least two per side), one line each. A value
    equal in all plain runs must be that value in every served run; a value that varies between plain runs
    must vary between served runs. `allowed`: observable names not compared (default: INHERENT, but for
    "modules", which is compared less MACHINERY_MODULES)."""
    skip = set(INHERENT) - {"modules"} if allowed is None else set(allowed)
    out: list[str] = []
    for name in plain[0]:
        if name in skip:
            continue
        if name == "modules":
            base = plain[0]["modules"]
            for snap in served:
                extra = modules_beyond(snap["modules"], base)
                missing = sorted(set(base) - set(snap["modules"]))
                if extra or missing:
                    out.append(f"modules: served has {extra[:20]} beyond plain and lacks {missing[:20]}")
                    break
            continue
        values = [normalized(p.get(name)) for p in plain]
        got = [normalized(s.get(name)) for s in served]
        if all(v == values[0] for v in values):
            for value in got:
                if value != values[0]:
                    out.append(f"{name}: plain {_short(values[0])} vs served {_short(value, values[0])}")
                    break
        elif len(served) > 1 and all(g == got[0] for g in got):
            out.append(f"{name}: varies between plain runs, the same in every served run ({_short(got[0])})")
    return out


def _short(value: Any, other: Any = None) -> str:
    if isinstance(value, dict) and isinstance(other, dict):
        diff = {k: value.get(k) for k in set(value) | set(other) if value.get(k) != other.get(k)}
        return f"(differing keys) {diff!r}"[:600]
    if isinstance(value, list) and isinstance(other, list):
        extra = [v for v in value if v not in other]
        missing = [v for v in other if v not in value]
        return f"(+{extra!r} -{missing!r})"[:600]
    return repr(value)[:300]
