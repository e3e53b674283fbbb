"""A run child of an early hand-off (../early.py) until its run is decided: its output held, its client waiting.

The client of an early hand-off has not imported pytest, so nothing has decided yet whether the daemon may
serve it. The run child decides, inside the run's own pytest configuration, at the point where the
in-process client decides (the plugin's pytest_load_initial_conftests, session.early_refusal), and until
then nothing it does may reach the client's terminal: fds 1 and 2 point at a memory file (divert()). Then:

- start(): nothing was written meanwhile; the client's fds 1 and 2 go back in place, the client is told
  "started", and the run goes on exactly as a served run does;
- refuse(reason): the client is told "refused" and this process leaves at once (os._exit: no atexit, no
  flush), so the client starts pytest itself as if it had never asked.

A run whose plugin never decides (blocked by `-p no:fastcollect` in an ini file edited since the index entry
was written) is refused by a guard in front of pytest's own `Config.pytest_load_initial_conftests`, the
trylast hook that imports the initial conftests: the plugin's hook (tryfirst) runs before it, so the guard
only acts when the plugin did not. The guard is removed from the class once the run is decided.
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import Any, NoReturn

from . import protocol
from .handoff import flush_stdio


class EarlyHold:
    """The undecided state of an early run child: `conn` to its client (at a high, close-on-exec fd),
    `key` and `files_digest` of the template (what the run's own configuration must give again),
    `interpreter` (keyfacts.interpreter_facts of the client), `exit_file` (child.exit_file)."""

    def __init__(self, conn: socket.socket, key: str, files_digest: str, interpreter: dict[str, Any],
                 exit_file: str) -> None:
        self.conn = conn
        self.key = key
        self.files_digest = files_digest
        self.interpreter = interpreter
        self.exit_file = exit_file
        self.pending = True
        #: fd number -> a high duplicate of the client's fd there
        self._saved: dict[int, int] = {}
        self._sink = -1
        self._guard: tuple[Any, Any] | None = None

    def divert(self) -> None:
        """Point fds 1 and 2 (those the client has open) at a memory file and guard pytest's conftest hook.
        Raises OSError, or RuntimeError for a pytest without the hook (then the child refuses)."""
        self._install_guard()
        self._sink = os.memfd_create("pytest-fastcollect-hold", os.MFD_CLOEXEC)
        for fd in (1, 2):
            try:
                os.fstat(fd)
            except OSError:
                continue  # closed in the client: stays closed
            self._saved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 1000)
            os.dup2(self._sink, fd)

    def _install_guard(self) -> None:
        from _pytest.config import Config

        original = Config.__dict__.get("pytest_load_initial_conftests")
        if original is None:
            raise RuntimeError("pytest's Config has no pytest_load_initial_conftests")
        hold = self

        def pytest_load_initial_conftests(self: Any, early_config: Any) -> Any:
            if hold.pending:
                hold.refuse("the plugin did not decide the run (not active in it)")
            return original(self, early_config)

        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(pytest_load_initial_conftests, attr, getattr(original, attr))
        pytest_load_initial_conftests.__dict__.update(original.__dict__)  # pluggy's hookimpl marker (trylast)
        Config.pytest_load_initial_conftests = pytest_load_initial_conftests  # type: ignore[method-assign]
        self._guard = (Config, original)

    def _remove_guard(self) -> None:
        if self._guard is not None:
            cls, original = self._guard
            cls.pytest_load_initial_conftests = original
            self._guard = None

    def _held_bytes(self) -> int:
        flush_stdio()
        try:
            return os.fstat(self._sink).st_size
        except OSError:
            return 0

    def start(self) -> None:
        """The run is served: the client's fds back at 1 and 2, "started" sent, the connection closed. A
        run that wrote something while undecided, or whose client went away, is refused instead."""
        held = self._held_bytes()
        if held:
            self.refuse(f"the run wrote {held} bytes before it was decided")
        self.pending = False
        self._remove_guard()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._saved.clear()
        os.close(self._sink)
        try:
            protocol.send(self.conn, {"type": "started", "pid": os.getpid(), "exit_file": self.exit_file})
        except OSError:
            os._exit(1)  # the client is gone: nobody is waiting for this run
        self.conn.close()

    def refuse(self, reason: str) -> NoReturn:
        """Tell the client "refused" (it starts pytest itself) and leave at once."""
        try:
            protocol.send(self.conn, {"type": "refused", "reason": f"early hand-off: {reason}"})
        except OSError:
            pass
        os._exit(0)
