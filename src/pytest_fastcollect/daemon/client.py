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
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import protocol
from .handoff import FORWARDED_SIGNALS, START_DEADLINE, NotServed, capture_process, connect, hand_off, wait

if TYPE_CHECKING:  # the worker launcher (worker.py) imports this module and must not pay for pytest
    import pytest

    from .paths import DaemonFiles

__all__ = ["FORWARDED_SIGNALS", "START_DEADLINE", "NotServed", "Target", "ask", "capture_process", "connect",
           "console_entry", "files_digest", "in_console_main", "run_files", "serve_run", "target", "wait"]

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


def target(config: pytest.Config, positional: list[str] | None = None, create: bool = True,
           interpreter: dict[str, Any] | None = None) -> Target:
    """The daemon for this run: one per key, and the key includes the run's initial paths, so `pytest`,
    `pytest tests/unit` and `pytest tests/unit/test_x.py::test_y` each have a daemon warmed for what they
    import. `interpreter`: keyfacts.interpreter_facts() of the run's process (default: this one). Raises
    paths.DaemonPathError for an unusable socket folder."""
    from ..environment import key_material
    from .paths import daemon_files, key_of

    dists = {(dist.project_name, dist.version) for _, dist in config.pluginmanager.list_plugin_distinfo()}
    material = key_material(config.rootpath, dists, interpreter)
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
        return hand_off(sock, request, fds, state)
    finally:
        sock.close()


