"""Starting a daemon in the background, at most one per key.

The key's lock file is the single-instance guarantee: a starter takes an exclusive flock on it without
waiting; if that fails, a daemon for the key is running or starting and nothing is spawned. If it succeeds,
the daemon is spawned holding the very same open file (the fd is inherited), so there is no moment between
"checked" and "started" in which a second starter could get in. The daemon keeps the lock until it exits.
(fcntl.flock directly rather than a locking library: the lock must pass to another process as an open fd.)

Detaching: subprocess starts `python -m pytest_fastcollect.daemon serve` in a new session with stdin, stdout
and stderr on /dev/null and every other fd closed but the lock; that process forks once more and its parent
exits at once (a double fork): the starter reaps it, and the daemon belongs to no terminal and no one's
process tree.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from dataclasses import replace
from typing import Any, Sequence

from ..paths import positional_args
from .paths import DaemonFiles
from .spec import Spec, serve_argv


def try_lock(files: DaemonFiles) -> int | None:
    """An fd holding the key's lock, or None when a daemon holds it. Raises OSError if the lock file
    cannot be opened."""
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    return fd


def daemon_running(files: DaemonFiles) -> bool:
    """True when a daemon for the key holds its lock (running or warming)."""
    fd = try_lock(files)
    if fd is None:
        return True
    os.close(fd)
    return False


def remove_stale_socket(files: DaemonFiles) -> bool:
    """Delete the key's socket if no daemon holds the lock (a daemon that died without cleaning up)."""
    fd = try_lock(files)
    if fd is None:
        return False
    try:
        os.unlink(files.socket)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def spawn(spec: Spec, files: DaemonFiles) -> bool:
    """Start a daemon for `spec` unless one holds the lock. Returns True if one was started. Raises OSError
    when the process cannot be started."""
    fd = try_lock(files)
    if fd is None:
        return False
    try:
        spec = replace(spec, lock_fd=fd)
        env = dict(os.environ)
        env.pop("PYTEST_VERSION", None)  # set by the starter's pytest.main(), not by the user
        proc = subprocess.Popen(
            serve_argv(spec, detach=True),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            pass_fds=(fd,),
            start_new_session=True,
        )
        proc.wait()  # the intermediate process exits as soon as the daemon has forked
    finally:
        os.close(fd)  # the daemon holds the same open file: the lock stays held
    return True


#: Command-line options (argparse dest) that change what a collection imports; the warm-up keeps those the
#: user gave explicitly, and drops everything else (-k, -x, --lf, -n, ...).
_IMPORT_OPTIONS = {
    "plugins": "-p",
    "inifilename": "-c",
    "rootdir": "--rootdir",
    "confcutdir": "--confcutdir",
    "override_ini": "-o",
    "ignore": "--ignore",
    "ignore_glob": "--ignore-glob",
}
_IMPORT_FLAGS = {"noconftest": "--noconftest", "pyargs": "--pyargs"}


def warm_args(parser: Any, args: Sequence[str], effective: Any) -> list[str]:
    """The warm-up collection's arguments for a run with command line `args` (pytest.Parser `parser`):
    the positional paths without `::` parts, and the import-relevant options given explicitly; plus the
    effective assertion and import modes (`effective`: config.known_args_namespace; both are in the key)."""
    given = parser.parse_known_args(list(args))
    default = parser.parse_known_args([])
    out: list[str] = []
    for dest, flag in _IMPORT_OPTIONS.items():
        value, base = getattr(given, dest, None), getattr(default, dest, None)
        if value == base or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            out += [flag, str(item)]
    for dest, flag in _IMPORT_FLAGS.items():
        if getattr(given, dest, False) and not getattr(default, dest, False):
            out.append(flag)
    for mode_dest, flag in (("assertmode", "--assert"), ("importmode", "--import-mode")):
        value = getattr(effective, mode_dest, None)
        if value:
            out.append(f"{flag}={value}")
    for item in positional_args(parser, args):
        out.append(str(item).split("::", 1)[0])
    return out


def make_spec(
    folder: str,
    key: str,
    rootdir: str,
    cwd: str,
    warm: list[str],
    idle_timeout: float,
    reason: str,
    files_digest: str = "",
    max_memory_mib: int = 0,
) -> Spec:
    """A Spec for a new daemon (its lock fd is filled in by spawn())."""
    return Spec(
        files_digest=files_digest,
        max_memory_mib=max_memory_mib,
        key=key,
        folder=folder,
        rootdir=rootdir,
        cwd=cwd,
        warm_args=warm,
        idle_timeout=idle_timeout,
        lock_fd=-1,
        reason=reason,
    )
