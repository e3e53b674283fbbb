"""Handing this process's run to a daemon connection and waiting for its end: shared by the in-process client
(client.py, from the plugin's pytest_load_initial_conftests), the early hand-off (../early.py, before pytest is
imported) and the warm xdist worker launcher (worker.py).

Standard-library imports only, and cheap ones: the early hand-off pays for every import here on each run.

The exchange (protocol.py frames): the client sends its request with its inherited fds (procstate.capture);
the first reply is "started" {pid, exit_file} from the run child, or "refused"/"error" {reason} (from the
daemon or from the child, before anything was written to the client's terminal); then "exit" {code, signal}
from the daemon when it reaps the run.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from . import procstate, protocol

TYPE_CHECKING = False  # typing is not imported at run time: the early hand-off pays for each import
if TYPE_CHECKING:
    from typing import Any

    from .paths import DaemonFiles

#: Seconds to wait for the daemon to connect us to a run (it stats every warm file first: ~0.1 s on sympy's
#: 700 files). A daemon that does not answer in time (stopped, swapped out) means a local run.
START_DEADLINE = 10.0
#: Signals a client passes on to its run.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)


class NotServed(Exception):
    """The daemon did not take the run (no daemon, refused, broken connection); the message says why."""


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


def capture_process() -> tuple[dict[str, Any], list[int]]:
    """This process's state for the run child (procstate.capture); raises NotServed when it cannot be
    passed on. Called before the connection exists, so its fd is not among the inherited ones."""
    try:
        return procstate.capture()
    except procstate.Unservable as exc:
        raise NotServed(str(exc)) from None


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


def flush_stdio() -> None:
    """Flush sys.stdout and sys.stderr; a stream that cannot be flushed (closed, broken pipe) is skipped."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001
            pass


def _die_by(sig: int) -> None:
    """End this process by signal `sig` (default disposition), as the run ended; returns only if it
    survives (then the caller exits with 128 + sig)."""
    flush_stdio()
    try:
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        return
    time.sleep(0.1)  # delivery is immediate for an unblocked signal to this thread; this is a safety margin


def process_started() -> float | None:
    """When this process started (epoch seconds): when the early hand-off's .pth hook ran (../early.py), or
    from /proc (clock-tick precision); None if neither tells."""
    early = sys.modules.get("pytest_fastcollect.early")
    if early is not None and getattr(early, "STARTED", None):
        return float(early.STARTED)
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def hand_off(sock: socket.socket, request: dict[str, Any], fds: list[int], state: dict[str, Any]) -> int:
    """Send `request` with `fds` (the process `state` procstate.capture gave) on `sock` and wait for the run:
    its exit code (a run killed by a signal kills this process by it). Raises NotServed when the run did not
    start (nothing was printed)."""
    request = {**request, "clock": {"started": process_started(), "sent": time.time()}}  # runclock.py
    try:
        protocol.send(sock, request, fds)
        reply, _ = protocol.recv(sock, deadline=time.monotonic() + START_DEADLINE)
    except (OSError, EOFError, protocol.ProtocolError) as exc:
        raise NotServed(f"daemon did not answer: {exc}") from None
    if reply["type"] == "refused" or reply["type"] == "error":
        raise NotServed(f"{reply['type']}: {reply.get('reason')}")
    if reply["type"] != "started" or not isinstance(reply.get("pid"), int):
        raise NotServed(f"unexpected reply {reply['type']!r}")
    return wait(sock, reply["pid"], procstate.ignored_signals(state), reply.get("exit_file"))
