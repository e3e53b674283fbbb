"""Watch mode: `pytest --daemon-watch [args]` runs the selection, then re-runs, on each saved change, the tests
the change can reach, each run a plain `pytest` process that the warm daemon serves (docs/watch.md).

- `changes.py`: which file events count (the ignore rules), and what a batch of changes means for the next
  run (`affected()`: the rules that keep the selection sound, as data).
- `terminal.py`: the keys, read between runs when stdin is a terminal.
- `loop.py`: the loop (`Watch`): watching, debouncing, queueing or interrupting, the status line.
- `only.py`, `affected.py`: `--fastcollect-only` and `--fastcollect-affected[-since]` in a run.
"""

from __future__ import annotations

from typing import Any


def register(config: Any) -> None:
    """The run-time restrictions of this package for a pytest run (called from pytest_configure): imported
    only when one of their options is given, so that other runs load nothing of watch/."""
    option = config.option
    if getattr(option, "fastcollect_only", None):
        from .only import register as register_only

        register_only(config)
    if getattr(option, "fastcollect_affected", False) or getattr(option, "fastcollect_affected_since", None) is not None:
        from .affected import register as register_affected

        register_affected(config)
