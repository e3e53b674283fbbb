"""The cyclic garbage collector around pytest's collection phase, and in children of the warm daemon.

Collection phase. Collecting allocates hundreds of thousands of objects that live until the session ends
(modules, items, fixture infos, marks). With CPython's default thresholds (700, 10, 10) the collector
traverses that growing heap again and again: on sympy's `--collect-only` (13,866 items) 10 full collections
took ~1.0 s of a 6.5 s run (measured with `gc.callbacks`, 2026-12-01). `CollectionGC` raises the young
generation's threshold to `COLLECTION_THRESHOLD0` for the collection phase only (~0.5 s saved there) and puts
the interpreter's thresholds back before the first test runs, so tests see the collector as configured.
Nothing is changed when the collector is disabled or its threshold is 0 or already higher, and thresholds
that a conftest or plugin sets during collection are left as that code set them. What moves is only *when*
cyclic garbage made during collection is found; reference counting frees everything else at once, as before.

Daemon children. The template calls `gc.freeze()` after warming (fewer copy-on-write pages, shorter
collections in the children), so a forked child starts with the template's objects in the permanent
generation: invisible to `gc.get_objects()` and `gc.get_referrers()`, never collected by `gc.collect()`.
A plain pytest process has no frozen objects. `unfreeze_on_demand()` makes the first call of those functions
(or of `gc.get_freeze_count()`) from test or plugin code `gc.unfreeze()` first, so what such code observes is
what it observes in a plain run; pytest's own end-of-session `gc.collect()` (_pytest/unraisableexception.py)
does not unfreeze: it only looks for unraisable exceptions, and a served run that never asked would pay for
copying the template's pages.
"""

from __future__ import annotations

import gc
import sys
from typing import Any, Callable

#: Young-generation threshold during the collection phase (CPython's default: 700). Measured on sympy
#: `--collect-only`: 10,000 took collector time from 1.04-1.09 s to 0.54-0.62 s; 50,000 and 200,000 were
#: slower again (each young collection then walks a heap that no longer fits in the CPU caches).
COLLECTION_THRESHOLD0 = 10_000


class CollectionGC:
    """Raises gc's generation-0 threshold between `start()` and `finish()` (pytest's `pytest_collection`
    hook, outermost). Both are no-ops when not applicable (see the module docstring); `finish()` is
    idempotent."""

    def __init__(self) -> None:
        self.saved: tuple[int, ...] | None = None
        self.raised: tuple[int, ...] | None = None

    def start(self) -> None:
        if self.saved is not None or not gc.isenabled():
            return
        current = tuple(gc.get_threshold())
        if current[0] <= 0 or current[0] >= COLLECTION_THRESHOLD0:
            return
        self.saved = current
        self.raised = (COLLECTION_THRESHOLD0, *current[1:])
        gc.set_threshold(*self.raised)

    def finish(self) -> None:
        if self.saved is None:
            return
        if tuple(gc.get_threshold()) == self.raised:  # else someone set their own during collection: keep it
            gc.set_threshold(*self.saved)
        self.saved = self.raised = None


#: gc functions whose result depends on frozen objects; pytest's own unraisable-exception cleanup
#: (`_PYTEST_CLEANUP`) calls `collect` without unfreezing.
_OBSERVERS = ("collect", "get_objects", "get_referrers", "get_freeze_count")
_PYTEST_CLEANUP = "_pytest.unraisableexception"


def unfreeze_on_demand() -> None:
    """In a daemon child (frozen objects inherited from the template): replace the `gc` functions named in
    `_OBSERVERS` by wrappers; the first wrapper called from anywhere but pytest's unraisable-exception
    cleanup calls `gc.unfreeze()` and puts the original functions back. Does nothing when nothing is frozen."""
    if gc.get_freeze_count() == 0:
        return
    originals: dict[str, Callable[..., Any]] = {name: getattr(gc, name) for name in _OBSERVERS}

    def restore() -> None:
        for name, original in originals.items():
            setattr(gc, name, original)
        gc.unfreeze()

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not (name == "collect" and caller == _PYTEST_CLEANUP):
                restore()
            return original(*args, **kwargs)

        wrapper.__name__ = name
        wrapper.__doc__ = original.__doc__
        return wrapper

    for name in _OBSERVERS:
        setattr(gc, name, wrap(name))


__all__ = ["COLLECTION_THRESHOLD0", "CollectionGC", "unfreeze_on_demand"]
