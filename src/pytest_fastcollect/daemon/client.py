"""A pytest run handing itself to the daemon, and asking a daemon questions.

serve_run() is called from the plugin's pytest_load_initial_conftests (tryfirst), before any conftest is
imported: it connects to the daemon of this run's key, sends argv, cwd, the environment, sys.path and its
process state (procstate.py: its inherited fds by SCM_RIGHTS, stdio, signal dispositions and mask, limits),
forwards SIGINT, SIGTERM, SIGQUIT and SIGHUP (those it does not ignore) to the run's process group, and
returns the run's exit code, or dies by the signal that killed the run. Anything that goes wrong before the
daemon says "started" raises NotServed: the caller then runs locally and nothing was printed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import procstate, protocol
from ..environment import key_material
from .paths import DaemonFiles, daemon_files, key_of

if TYPE_CHECKING:  # the worker launcher (worker.py) imports this module and must not pay for pytest
    import pytest

#: Seconds to wait for the daemon to connect us to a run (it stats every warm file first: ~0.1 s on sympy's
#: 700 files). A daemon that does not answer in time (stopped, swapped out) means a local run.
START_DEADLINE = 10.0
#: Signals a client passes on to its run.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)


class NotServed(Exception):
    """The daemon did not take the run (no daemon, refused, broken connection); the message says why."""


@dataclass(frozen=True)
class Target:
    """The daemon a run may use: its key, the material hashed into it, its files, the rootdir, and the
    digest of the test files the run's collection would consider (the daemon serves only runs whose files
    are exactly the ones it imported, in the same order)."""

    key: str
    material: dict[str, Any]
    files: DaemonFiles
    rootdir: str
    files_digest: str = ""


def files_digest(files: list[str]) -> str:
    """20 hex digits of SHA-256 over the ordered list of candidate test files."""
    import hashlib

    return hashlib.sha256("\0".join(files).encode("utf-8", "surrogateescape")).hexdigest()[:20]


def run_files(config: pytest.Config, positional: list[str]) -> tuple[list[str], list[str]]:
    """(initial paths, candidate `.py` test files in pytest's order) of a run with these positional
    arguments: the C++ walker with pytest's path rules (paths.path_rules), one thread."""
    from ..discovery import walk
    from ..paths import path_rules

    rules = path_rules(config, positional, config.known_args_namespace)
    return list(rules.roots), [f for f in walk(rules, 1).files if f.endswith(".py")]


def target(config: pytest.Config, positional: list[str] | None = None, create: bool = True) -> Target:
    """The daemon for this run: one per key, and the key includes the run's initial paths, so `pytest`,
    `pytest tests/unit` and `pytest tests/unit/test_x.py::test_y` each have a daemon warmed for what they
    import. Raises paths.DaemonPathError for an unusable socket folder."""
    dists = {(dist.project_name, dist.version) for _, dist in config.pluginmanager.list_plugin_distinfo()}
    material = key_material(config.rootpath, dists)
    options = config.known_args_namespace
    material["assertmode"] = str(getattr(options, "assertmode", ""))
    material["importmode"] = str(getattr(options, "importmode", ""))
    if positional is None:
        positional = list(options.file_or_dir or [])
    roots, files = run_files(config, positional)
    material["roots"] = roots
    key = key_of(material)
    return Target(key, material, daemon_files(key, create=create), str(config.rootpath), files_digest(files))


def console_entry() -> Any:
    """pytest's command-line entry point: `_pytest.config._console_main` (pytest >= 9.1, what the `pytest`
    script and `python -m pytest` call), else `console_main` (pytest 8)."""
    import _pytest.config

    return getattr(_pytest.config, "_console_main", None) or _pytest.config.console_main


def in_console_main() -> bool:
    """True when this pytest was started by the `pytest` command or `python -m pytest`, not by an
    in-process pytest.main() call (also not one made inside a test of a run that was itself started from
    the command line): the innermost frames of pytest's main()/_main() that run this config must be called
    directly by pytest's console entry point. Only then may the process hand its run to a daemon and
    leave with SystemExit."""
    import _pytest.config as cfg

    mains = {f.__code__ for f in (cfg.main, getattr(cfg, "_main", None)) if f is not None}
    consoles = {f.__code__ for f in (getattr(cfg, "_console_main", None), cfg.console_main) if f is not None}
    frame = sys._getframe(1)
    while frame is not None and frame.f_code not in mains:
        frame = frame.f_back
    if frame is None:
        return False
    while frame is not None and frame.f_code in mains:  # pytest.main() -> _main() (pytest >= 9.1)
        frame = frame.f_back
    return frame is not None and frame.f_code in consoles


def connect(files: DaemonFiles | str, timeout: float = 1.0) -> socket.socket:
    """A connection to the daemon (its files, or its socket's path). Raises NotServed("no daemon") or
    NotServed("stale socket")."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(files if isinstance(files, str) else str(files.socket))
    except FileNotFoundError:
        sock.close()
        raise NotServed("no daemon") from None
    except ConnectionRefusedError:
        sock.close()
        raise NotServed("stale socket") from None
    except OSError as exc:
        sock.close()
        raise NotServed(f"cannot connect: {exc}") from None
    if sock.fileno() <= 2:  # fd 0, 1 or 2 was closed: keep the standard numbers free of the socket
        import fcntl

        high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
        timeout = sock.gettimeout()
        sock.close()
        sock = socket.socket(fileno=high)
        sock.settimeout(timeout)
    return sock


def ask(files: DaemonFiles, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send a control request ("status", "ping", "stop", "reload") and return the reply. Raises NotServed."""
    sock = connect(files)
    try:
        protocol.send(sock, {"type": kind})
        reply, _ = protocol.recv(sock, deadline=time.monotonic() + timeout)
        return reply
    except (OSError, EOFError, protocol.ProtocolError) as exc:
        raise NotServed(f"{kind}: {exc}") from None
    finally:
        sock.close()


def capture_process() -> tuple[dict[str, Any], list[int]]:
    """This process's state for the run child (procstate.capture); raises NotServed when it cannot be
    passed on. Called before the connection exists, so its fd is not among the inherited ones."""
    try:
        return procstate.capture()
    except procstate.Unservable as exc:
        raise NotServed(str(exc)) from None


def serve_run(tgt: Target, fresh: str | None = None) -> int:
    """Run this pytest invocation in the daemon; returns its exit code. `fresh`: why the run must start from
    level 0, with the project imported fresh (a tool that measures from the start: coverage), or None.
    Raises NotServed before the run started (nothing was printed). After it started, a lost connection
    gives exit code 3 and a message; a run killed by a signal kills this process with the same signal."""
    state, fds = capture_process()
    sock = connect(tgt.files)
    request = {
        "type": "run",
        "key": tgt.key,
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "sys_path": [str(p) for p in sys.path],
        "files_digest": tgt.files_digest,
        "fresh": fresh,
        "process": state,
    }
    try:
        try:
            protocol.send(sock, request, fds)
            reply, extra = protocol.recv(sock, deadline=time.monotonic() + START_DEADLINE)
        except (OSError, EOFError, protocol.ProtocolError) as exc:
            raise NotServed(f"daemon did not answer: {exc}") from None
        if reply["type"] == "refused" or reply["type"] == "error":
            raise NotServed(f"{reply['type']}: {reply.get('reason')}")
        if reply["type"] != "started" or not isinstance(reply.get("pid"), int):
            raise NotServed(f"unexpected reply {reply['type']!r}")
        return wait(sock, reply["pid"], procstate.ignored_signals(state), reply.get("exit_file"))
    finally:
        sock.close()


def wait(sock: socket.socket, pid: int, ignored: set[int], exit_file: Any = None) -> int:
    """Wait for the "exit" of run `pid`, forwarding the FORWARDED_SIGNALS this process does not ignore (an
    ignored signal does not reach a plain run either) to the run's process group. Returns the exit code;
    for a run killed by a signal, kills this process with that signal (its parent sees what a plain
    pytest's parent would: WIFSIGNALED)."""

    def forward(signum: int, frame: Any) -> None:
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS if int(sig) not in ignored}
    try:
        while True:
            try:
                message, _ = protocol.recv(sock, deadline=None)
            except (EOFError, OSError, protocol.ProtocolError) as exc:
                code = _orphan_exit(pid, exit_file)  # the template died: the run goes on without it
                if code is None:
                    print(f"pytest-fastcollect: lost the daemon's run (pid {pid}): {exc}", file=sys.stderr)
                    return 3
                if isinstance(code, str):
                    _die_by(int(code))
                    return 128 + int(code)
                return code
            if message["type"] == "exit" and isinstance(message.get("code"), int):
                sig = message.get("signal")
                if isinstance(sig, int) and 0 < sig < signal.NSIG:
                    _die_by(sig)
                return int(message["code"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _orphan_exit(pid: int, exit_file: Any) -> int | str | None:
    """Wait for run `pid`, whose template went away, to end (a pidfd: it is not our child), then read the
    status it left in `exit_file` (child.exit_file): an exit code, or a signal number as a str; None when
    there is none (it was killed, or the daemon is older)."""
    import select

    if not isinstance(exit_file, str):
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    except (AttributeError, OSError):
        return None
    if pidfd is not None:
        try:
            select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
    try:
        with open(exit_file, encoding="ascii") as fh:
            text = fh.read().strip()
        os.unlink(exit_file)
    except OSError:
        return None
    if text.startswith("signal "):
        return text.split()[1]
    return int(text) if text.isdigit() else None


def _die_by(sig: int) -> None:
    """End this process by signal `sig` (default disposition), as the run ended; returns only if it
    survives (then the caller exits with 128 + sig)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001
            pass
    try:
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        return
    time.sleep(0.1)  # delivery is immediate for an unblocked signal to this thread; this is a safety margin
