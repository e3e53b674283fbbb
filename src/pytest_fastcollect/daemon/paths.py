"""Where a daemon lives and which daemon a run may use: the socket folder, the key, the per-key files.

Security model (docs/security.md): the folder is `$XDG_RUNTIME_DIR/pytest-fastcollect/` when
XDG_RUNTIME_DIR names a folder we own, else `<tempfile.gettempdir()>/pytest-fastcollect-<uid>/`. It is
created 0700; an existing folder that is a symlink, is owned by someone else or is open to group or others
is refused (DaemonPathError), so no other user can plant or read a socket. Sockets are created 0600 and every
connection's peer uid is checked (forkserver.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Linux's sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class DaemonPathError(Exception):
    """The socket folder is unusable or unsafe; the message says why. A run then goes on locally."""


def key_of(material: dict[str, Any]) -> str:
    """20 hex digits of SHA-256 over the canonical JSON of key_material()."""
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode("utf-8", "surrogateescape")
    return hashlib.sha256(blob).hexdigest()[:20]


def socket_dir(create: bool = True) -> Path:
    """The per-user socket folder (see the module docstring). Raises DaemonPathError when it is unsafe or
    cannot be made; with create=False a missing folder is returned as is."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    base: Path | None = None
    if runtime:
        try:
            st = os.stat(runtime)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                base = Path(runtime) / "pytest-fastcollect"
        except OSError:
            base = None
    if base is None:
        base = Path(tempfile.gettempdir()) / f"pytest-fastcollect-{uid}"
    if create:
        try:
            os.mkdir(base, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise DaemonPathError(f"cannot create {base}: {exc.strerror}") from None
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        if create:
            raise DaemonPathError(f"{base} vanished") from None
        return base
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise DaemonPathError(f"{base} is not a folder (refused)")
    if st.st_uid != uid:
        raise DaemonPathError(f"{base} is owned by uid {st.st_uid}, not {uid} (refused)")
    if st.st_mode & 0o077:
        raise DaemonPathError(f"{base} has mode {stat.S_IMODE(st.st_mode):o}, expected 700 (refused)")
    return base


@dataclass(frozen=True)
class DaemonFiles:
    """The files of the daemon with one key, all in the socket folder."""

    folder: Path
    key: str

    @property
    def socket(self) -> Path:
        return self.folder / f"{self.key}.sock"

    @property
    def lock(self) -> Path:
        """Held (flock) by the daemon for its whole life: held means a daemon runs or is starting."""
        return self.folder / f"{self.key}.lock"

    @property
    def pid(self) -> Path:
        """The daemon's pid, written when it starts (to stop one that is still warming)."""
        return self.folder / f"{self.key}.pid"

    @property
    def meta(self) -> Path:
        """JSON {"rootdir", "executable", "warm_args", "pid"} of the daemon while it runs: which project a
        daemon serves, for a `--daemon-stop` that stops all of a project's daemons."""
        return self.folder / f"{self.key}.json"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

    @property
    def last_run(self) -> Path:
        """Where the last run child left its clock (runclock.py)."""
        return self.folder / f"{self.key}.last-run.json"

    @property
    def cache_dir(self) -> Path:
        """pytest's cache_dir for the warm-up collection, so warming never writes the project's cache."""
        return self.folder / f"{self.key}.pytest-cache"


def daemon_files(key: str, create: bool = True) -> DaemonFiles:
    """Files for `key`. Raises DaemonPathError for an unsafe folder or a socket path that is too long."""
    files = DaemonFiles(socket_dir(create=create), key)
    if len(os.fsencode(str(files.socket))) > MAX_SOCKET_PATH:
        raise DaemonPathError(f"socket path {files.socket} is longer than {MAX_SOCKET_PATH} bytes")
    return files
