"""Where a daemon lives and which daemon a run may use: the socket folder, the key, the per-key files.

Security model (docs/security.md): the folder is `$XDG_RUNTIME_DIR/pytest-fastcollect/` when
XDG_RUNTIME_DIR names a folder we own, else `<tempfile.gettempdir()>/pytest-fastcollect-<uid>/`. It is
created 0700; an existing folder that is a symlink, is owned by someone else or is open to group or others
is refused (DaemonPathError), so no other user can plant or read a socket. Sockets are created 0600 and every
connection's peer uid is checked (server.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .. import __version__

#: Environment variables left out of the key. A run always gets its caller's whole environment (the child
#: replaces os.environ); the key decides only which warm template may serve it, so a variable may be left
#: out only if no module reads it at import time in a way that matters: what describes the terminal, the
#: shell's prompt and history, the session, a shim or IDE's bookkeeping. Reviewed against bash/zsh with a
#: venv's `activate` (PS1, VIRTUAL_ENV_PROMPT, _OLD_VIRTUAL_*), pyenv's shims (PYENV_*: the interpreter is
#: in the key by its path), conda's activation (CONDA_SHLVL, CONDA_PROMPT_MODIFIER, the stacked
#: CONDA_PREFIX_<n>), VS Code's and JetBrains' terminals and runners. Everything else is part of the key: a
#: different value means a different daemon.
VOLATILE_ENV = frozenset(
    {
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PROMPT",
        "RPROMPT",
        "PROMPT_COMMAND",
        "VIRTUAL_ENV_PROMPT",
        "_OLD_VIRTUAL_PS1",
        "_OLD_VIRTUAL_PATH",
        "_OLD_VIRTUAL_PYTHONHOME",
        "HISTFILE",
        "HISTSIZE",
        "HISTFILESIZE",
        "HISTCONTROL",
        "CONDA_SHLVL",
        "CONDA_PROMPT_MODIFIER",
        "XDG_SESSION_ID",
        "TERMINAL_EMULATOR",
        "PYCHARM_HOSTED",
        "PYCHARM_DISPLAY_PORT",
        "GIT_ASKPASS",
        "WT_SESSION",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "TERM",
        "COLORTERM",
        "COLUMNS",
        "LINES",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "TERM_SESSION_ID",
        "WINDOWID",
        "TMUX",
        "TMUX_PANE",
        "STY",
        "VTE_VERSION",
        "SSH_TTY",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_AUTH_SOCK",
        "GPG_TTY",
        "LS_COLORS",
        "NO_COLOR",
        "FORCE_COLOR",
        "PY_COLORS",
        "PYTEST_VERSION",  # set by pytest's own main() while it runs
    }
)
#: Prefixes of volatile variables (terminal emulators' per-window variables).
VOLATILE_ENV_PREFIXES = ("KONSOLE_", "ITERM_", "LC_TERMINAL", "PYENV_", "CONDA_PREFIX_", "VSCODE_")

#: Linux's sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class DaemonPathError(Exception):
    """The socket folder is unusable or unsafe; the message says why. A run then goes on locally."""


def is_volatile(name: str) -> bool:
    return name in VOLATILE_ENV or name.startswith(VOLATILE_ENV_PREFIXES)


def key_material(rootdir: str | os.PathLike[str], plugin_dists: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Everything that must be equal for a run to use a daemon. `plugin_dists`: (name, version) of the
    distributions whose pytest plugins are loaded (pluginmanager.list_plugin_distinfo())."""
    return {
        "rootdir": str(rootdir),
        "executable": os.path.abspath(sys.executable),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "python": sys.version,
        "flags": repr(sys.flags),
        "xoptions": sorted((str(k), str(v)) for k, v in sys._xoptions.items()),
        "warnoptions": list(sys.warnoptions),
        "pytest": _pytest_version(),
        "fastcollect": __version__,
        "plugins": sorted(set(plugin_dists)),
        "uid": os.getuid(),
        "env": sorted((k, v) for k, v in os.environ.items() if not is_volatile(k)),
    }


def _pytest_version() -> str:
    import pytest

    return pytest.__version__


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
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

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
