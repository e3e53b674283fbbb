"""The global random number generators a served run must see as a plain run would.

A plain run imports the project fresh: `random`'s global generator and numpy's legacy global RandomState
get fresh entropy at interpreter start, unless a module seeds them at import (`random.seed(1234)` in a
conftest), in which case every run draws the same numbers. A run forked from the template inherits the
template's generator states instead; CPython reseeds `random` after every fork (`os.register_at_fork` in
Lib/random.py), numpy reseeds nothing. Neither is what a plain run gets in both cases, so the template
records, while it warms, whether project code seeded either generator explicitly (`random.seed`,
`random.setstate`, `numpy.random.seed`, `numpy.random.set_state` with a value), and `apply()` in each run
child then restores the warm-up's final state of an explicitly seeded generator (a plain run's state after
the same imports) and reseeds one that was not (fresh entropy, as at interpreter start).

Not covered (docs/how-it-works.md): generator objects a module creates at import without a seed
(`random.Random()`, `numpy.random.default_rng()` assigned to a global): their sequences repeat between
served runs.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


class SeedTracker:
    """Records explicit seeding of the global generators while `active` (the warm-up); `finish()` keeps the
    states to restore, `apply()` (in a run child) restores or reseeds. Install once: `start()`."""

    def __init__(self) -> None:
        self.active = False
        self.seeded: dict[str, bool] = {"random": False, "numpy": False}
        self.saved: dict[str, Any] = {}
        self._originals: list[tuple[Any, str, Callable[..., Any]]] = []
        self._numpy_wrapped = False

    def _wrap(self, module: Any, name: str, which: str, seeding: Callable[[tuple[Any, ...], dict[str, Any]], bool]) -> None:
        original = getattr(module, name, None)
        if original is None or getattr(original, "_fastcollect_wrapped", False):
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.active:
                self.seeded[which] = seeding(args, kwargs)
            return original(*args, **kwargs)

        wrapper._fastcollect_wrapped = True  # type: ignore[attr-defined]
        setattr(module, name, wrapper)
        self._originals.append((module, name, original))

    def _watch_numpy(self) -> None:
        numpy_random = sys.modules.get("numpy.random")
        if self._numpy_wrapped or numpy_random is None or getattr(numpy_random, "seed", None) is None:
            return
        self._wrap(numpy_random, "seed", "numpy", lambda a, k: bool(a and a[0] is not None) or k.get("seed") is not None)
        self._wrap(numpy_random, "set_state", "numpy", lambda a, k: True)
        self._numpy_wrapped = True

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """sys.addaudithook target: numpy.random is wrapped at the first import event after it loaded."""
        if self.active and event == "import":
            self._watch_numpy()

    def start(self) -> None:
        """Begin recording (the warm-up): wrap random.seed and random.setstate (the module's functions, which
        are its global generator's methods) and, once it is imported, numpy.random's."""
        import random

        self._wrap(random, "seed", "random", lambda a, k: bool(a and a[0] is not None) or k.get("a") is not None)
        self._wrap(random, "setstate", "random", lambda a, k: True)
        self._watch_numpy()
        if not getattr(SeedTracker, "_hooked", False):
            sys.addaudithook(_dispatch)
            SeedTracker._hooked = True  # type: ignore[attr-defined]
        _TRACKERS.append(self)
        self.active = True

    def finish(self) -> None:
        """End recording: unwrap, and keep the state of each explicitly seeded generator."""
        self._watch_numpy()
        self.active = False
        for module, name, original in reversed(self._originals):
            setattr(module, name, original)
        self._originals.clear()
        self._numpy_wrapped = False
        if self in _TRACKERS:
            _TRACKERS.remove(self)
        import random

        if self.seeded["random"]:
            self.saved["random"] = random.getstate()
        numpy_random = sys.modules.get("numpy.random")
        if self.seeded["numpy"] and numpy_random is not None:
            self.saved["numpy"] = numpy_random.get_state()

    def apply(self) -> None:
        """In a run child: the generators as a plain run would have them after the same imports."""
        import random

        if "random" in self.saved:
            random.setstate(self.saved["random"])
        # (otherwise CPython's at-fork hook has reseeded it already)
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is None:
            return
        if "numpy" in self.saved:
            numpy_random.set_state(self.saved["numpy"])
        else:
            numpy_random.seed()


_TRACKERS: list[SeedTracker] = []


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    for tracker in _TRACKERS:
        tracker.audit(event, args)
