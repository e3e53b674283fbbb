"""Watch mode's keys: single key presses read from a terminal between runs, without echo.

`Keys(stream)` is inactive (every read returns None) unless `stream` is a terminal. `listen()` puts the
terminal in cbreak mode (termios: no line buffering, no echo; signals such as Ctrl-C still arrive) and
`release()` restores the caller's settings (the loop calls it before every run and prompt, and at the end),
so a run always starts with the terminal as the caller had it. `prompt(text)` reads one line in the
caller's mode (for the name and file filters).
"""

from __future__ import annotations

import os
import select
import sys
from typing import IO

#: The keys and what they do, for the help line (loop.Watch dispatches them).
KEYS = {"a": "all", "f": "failed", "p": "file filter", "t": "name filter", "\n": "re-run", "q": "quit"}


def help_line() -> str:
    names = {"\n": "Enter"}
    return ", ".join(f"{names.get(k, k)} {what}" for k, what in KEYS.items())


class Keys:
    """Key presses from `stream` (default stdin) when it is a terminal."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = sys.stdin if stream is None else stream
        try:
            self.fd: int | None = self.stream.fileno() if self.stream.isatty() else None
        except (AttributeError, OSError, ValueError):
            self.fd = None
        self._saved: list | None = None

    @property
    def active(self) -> bool:
        return self.fd is not None

    def listen(self) -> None:
        """cbreak mode without echo until release() (no-op when inactive or already listening)."""
        if self.fd is None or self._saved is not None:
            return
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)

    def release(self) -> None:
        """The caller's terminal settings again (before a run, a prompt, and at the end)."""
        if self.fd is None or self._saved is None:
            return
        import termios

        saved, self._saved = self._saved, None
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)
        except termios.error:
            pass

    def read(self, timeout: float = 0.0) -> str | None:
        """One key pressed within `timeout` seconds, or None (also at end of input)."""
        if self.fd is None:
            return None
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 1)
        if not data:
            self.fd = None  # the terminal went away: keys off
            return None
        return data.decode("utf-8", "replace").replace("\r", "\n")

    def prompt(self, text: str, out: IO[str]) -> str:
        """A line typed after `text` (the terminal in the caller's mode, with echo); '' at end of input."""
        self.release()
        out.write(text)
        out.flush()
        if self.fd is None:
            return ""
        chunks = []
        while True:
            data = os.read(self.fd, 1)
            if not data or data in (b"\n", b"\r"):
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace").strip()
