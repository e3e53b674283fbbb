"""How to start a daemon process: its Spec (JSON on its command line) and the command that runs it.

A leaf module: spawn.py (the first start), level0.py (re-execution) and level1.py (a level 1 built from a
Spec) all use it, and it imports nothing of the daemon's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, fields


@dataclass
class Spec:
    """How to start a template: the key and its files' folder, the rootdir, the folder and arguments of the
    warm-up collection, the idle timeout (seconds, 0 = never), and the fd of the held lock file."""

    key: str
    folder: str
    rootdir: str
    cwd: str
    warm_args: list[str]
    idle_timeout: float
    lock_fd: int
    reason: str = "started"
    #: warm-ups in a row for files that changed during the warm-up (capped: level1.MAX_DIRTY_RETRIES)
    dirty_retries: int = 0
    #: client.files_digest of the test files the starter's run would collect: the warm-up must see the same
    files_digest: str = ""
    #: pid of the process holding the socket that a level 1 takes over from (level 0, or the level 1 it
    #: succeeds in a re-warm): it warms while that one serves, then takes the socket over (an atomic rename)
    #: and tells it (SIGUSR1); 0 for level 0
    successor_of: int = 0
    #: re-warms so far in this daemon's line of templates
    generation: int = 0
    #: ini fastcollect_daemon_max_memory: MiB of RSS above which an idle template restarts (0 = no limit)
    max_memory_mib: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """The Spec of `to_json`'s text; fields it does not know (a daemon started by an older version that
        re-executes with this one) are ignored. Raises ValueError, TypeError for a malformed text."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})



def interpreter() -> list[str]:
    """This interpreter with this process's interpreter options (-X, -W, -O, -B, -E, -s, -I, ...: they are
    part of the key, and the daemon's runs must see the same sys.flags and warnoptions as the caller)."""
    return [sys.executable, *subprocess._args_from_interpreter_flags()]  # type: ignore[attr-defined]


def serve_argv(spec: Spec, detach: bool = False) -> list[str]:
    """The command of a daemon process for `spec`: `python -m pytest_fastcollect.daemon serve SPEC`
    (`detach`: it forks once more, the first start; else `--no-detach`, a re-execution in place)."""
    return [*interpreter(), "-m", "pytest_fastcollect.daemon", "serve", *([] if detach else ["--no-detach"]),
            spec.to_json()]
