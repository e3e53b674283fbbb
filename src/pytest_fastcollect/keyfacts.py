"""The parts of a daemon's key a process knows before pytest is imported (environment.key_material has the
rest): its interpreter's facts, and which environment variables are left out. Standard-library imports only
(the early hand-off, ../early.py, imports this module on every pytest start).
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # typing is not imported at run time: the early hand-off pays for each import
if TYPE_CHECKING:
    from typing import Any

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
        "PYTEST_FASTCOLLECT_EARLY",  # the early hand-off's switch (early.py), read before pytest starts
    }
)
#: Prefixes of volatile variables (terminal emulators' per-window variables).
VOLATILE_ENV_PREFIXES = ("KONSOLE_", "ITERM_", "LC_TERMINAL", "PYENV_", "CONDA_PREFIX_", "VSCODE_")

def is_volatile(name: str) -> bool:
    return name in VOLATILE_ENV or name.startswith(VOLATILE_ENV_PREFIXES)


def interpreter_facts() -> dict[str, Any]:
    """This interpreter, as the key has it: executable (absolute), prefixes, version, flags (repr of
    sys.flags), -X options and -W options. Equal facts mean a fork of the daemon behaves like this process
    would have at start-up."""
    return {
        "executable": os.path.abspath(sys.executable),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "python": sys.version,
        "flags": repr(sys.flags),
        "xoptions": sorted([str(k), str(v)] for k, v in sys._xoptions.items()),
        "warnoptions": list(sys.warnoptions),
    }
