"""A pytest run handing itself to the daemon, and asking a daemon questions.

serve_run() is called from the plugin's pytest_load_initial_conftests (tryfirst), before any conftest is
imported: it connects to the daemon of this run's key, sends argv, cwd, the environment, sys.path and its
stdin/stdout/stderr (SCM_RIGHTS), forwards SIGINT, SIGTERM, SIGQUIT and SIGHUP to the run's process group,
and returns the run's exit code. Anything that goes wrong before the daemon says "started" raises
NotServed: the caller then runs locally and nothing was printed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import protocol
from .paths import DaemonFiles, daemon_files, key_material, key_of

if TYPE_CHECKING:  # the worker launcher (worker.py) imports this module and must not pay for pytest
    import pytest

#: Seconds to wait for the daemon to connect us to a run (it stats every warm file first).
START_DEADLINE = 30.0
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


def _stdio_info() -> tuple[list[int], list[dict[str, Any] | None], list[int]]:
    """(fds to send, per-stream description, fds we opened and must close)."""
    fds: list[int] = []
    infos: list[dict[str, Any] | None] = []
    opened: list[int] = []
    for fd, stream in ((0, sys.stdin), (1, sys.stdout), (2, sys.stderr)):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:  # closed: send /dev/null in its place
            devnull = os.open(os.devnull, os.O_RDWR)
            opened.append(devnull)
            fds.append(devnull)
        if stream is None:
            infos.append(None)
        else:
            infos.append(
                {
                    "encoding": getattr(stream, "encoding", None),
                    "errors": getattr(stream, "errors", None),
                    "line_buffering": bool(getattr(stream, "line_buffering", False)),
                    "write_through": bool(getattr(stream, "write_through", False)),
                }
            )
    return fds, infos, opened


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


def serve_run(tgt: Target) -> int:
    """Run this pytest invocation in the daemon; returns its exit code. Raises NotServed before the run
    started (nothing was printed). After it started, a lost connection gives exit code 3 and a message."""
    sock = connect(tgt.files)
    fds, infos, opened = _stdio_info()
    request = {
        "type": "run",
        "key": tgt.key,
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "sys_path": [str(p) for p in sys.path],
        "umask": _umask(),
        "stdio": infos,
        "files_digest": tgt.files_digest,
    }
    try:
        try:
            protocol.send(sock, request, fds)
            reply, extra = protocol.recv(sock, deadline=time.monotonic() + START_DEADLINE)
        except (OSError, EOFError, protocol.ProtocolError) as exc:
            raise NotServed(f"daemon did not answer: {exc}") from None
        finally:
            for fd in opened:
                os.close(fd)
        if reply["type"] == "refused" or reply["type"] == "error":
            raise NotServed(f"{reply['type']}: {reply.get('reason')}")
        if reply["type"] != "started" or not isinstance(reply.get("pid"), int):
            raise NotServed(f"unexpected reply {reply['type']!r}")
        return _wait(sock, reply["pid"])
    finally:
        sock.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _wait(sock: socket.socket, pid: int) -> int:
    def forward(signum: int, frame: Any) -> None:
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        while True:
            try:
                message, _ = protocol.recv(sock, deadline=None)
            except (EOFError, OSError, protocol.ProtocolError) as exc:
                print(f"pytest-fastcollect: lost the daemon's run (pid {pid}): {exc}", file=sys.stderr)
                return 3
            if message["type"] == "exit" and isinstance(message.get("code"), int):
                try:
                    protocol.send(sock, {"type": "done"})  # the template stops watching this run
                except OSError:
                    pass
                return int(message["code"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
