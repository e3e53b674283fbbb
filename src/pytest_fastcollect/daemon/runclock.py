"""Where a served run's wall time went, for `--daemon-status` ("last run").

The client puts {"started": when its process started, "sent": when it sent the request} (epoch seconds) in
its request (handoff.py); the run child marks the moments it passes (start(), mark(): "forked", "main"
(pytest's main begins), "configured", "collected", "tests" (the last test ended), "end") and writes them to
`<key>.last-run.json` in the socket folder just before it exits (write()); the template's status frame
reads that file back (read()) and the status table shows it (describe()). Only the first mark of a name
counts (a pytest.main() inside a test marks nothing new). Standard library only.

Shape of the file: {"early": bool, "level": int, "argv": str, "marks": {name: epoch seconds}}.
"""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: (label, from mark, to mark) of the phases describe() shows, in order.
PHASES = (
    ("client start-up", "started", "sent"),
    ("hand-off", "sent", "forked"),
    ("set-up", "forked", "main"),
    ("configure", "main", "configured"),
    ("collection", "configured", "collected"),
    ("tests", "collected", "tests"),
    ("report", "tests", "end"),
)

_MARKS: dict[str, float] | None = None
_INFO: dict[str, Any] = {}


def start(client: Any, early: bool, level: int, argv: list[str]) -> None:
    """Begin the clock of this run child with the client's marks (request["clock"], may be missing)."""
    global _MARKS
    _MARKS = {}
    if isinstance(client, dict):
        for name in ("started", "sent"):
            if isinstance(client.get(name), (int, float)):
                _MARKS[name] = float(client[name])
    _INFO.update(early=early, level=level, argv=" ".join(argv[1:])[:200])
    mark("forked")


def mark(name: str) -> None:
    """Record `name` now (a no-op outside a run child, and for a name already marked)."""
    if _MARKS is not None and name not in _MARKS:
        _MARKS[name] = time.time()


def write(path: str) -> None:
    """Write the marks to `path` (atomically); never raises."""
    if _MARKS is None:
        return
    try:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({**_INFO, "marks": _MARKS}, fh)
        os.replace(tmp, path)
    except OSError:
        pass


def read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("marks"), dict) else None


def describe(data: dict[str, Any] | None) -> str:
    """One line: the whole wall time from the client's start to the run's end, then each phase in ms."""
    if not data:
        return "-"
    marks = data["marks"]
    parts = []
    for label, a, b in PHASES:
        if isinstance(marks.get(a), (int, float)) and isinstance(marks.get(b), (int, float)):
            parts.append(f"{label} {1000 * (marks[b] - marks[a]):.0f}")
    first = marks.get("started", marks.get("forked"))
    total = f"{marks['end'] - first:.3f}s" if isinstance(marks.get("end"), (int, float)) and first else "?"
    how = "early hand-off" if data.get("early") else "in-process hand-off"
    return f"{total} ({how}, level {data.get('level')}): {', '.join(parts)} ms; {data.get('argv') or '(no args)'}"
