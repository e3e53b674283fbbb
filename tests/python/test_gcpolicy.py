"""gcpolicy.py: the collector's threshold during the collection phase, and the daemon child's frozen objects
(the latter end to end in test_daemon.py::test_gc_sees_import_time_objects_in_a_served_run)."""

from __future__ import annotations

import gc
import textwrap
from collections.abc import Iterator

import pytest

from pytest_fastcollect.gcpolicy import COLLECTION_THRESHOLD0, CollectionGC, unfreeze_on_demand


@pytest.fixture
def thresholds() -> Iterator[tuple[int, ...]]:
    saved = gc.get_threshold()
    enabled = gc.isenabled()
    gc.set_threshold(700, 10, 10)
    try:
        yield (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
        if enabled:
            gc.enable()


def test_threshold_raised_between_start_and_finish(thresholds: tuple[int, ...]) -> None:
    policy = CollectionGC()
    policy.start()
    assert gc.get_threshold() == (COLLECTION_THRESHOLD0, 10, 10)
    policy.finish()
    assert gc.get_threshold() == thresholds
    policy.finish()  # idempotent
    assert gc.get_threshold() == thresholds


@pytest.mark.parametrize("setting", ["disabled", "threshold 0", "already higher"])
def test_nothing_changes_when_not_applicable(thresholds: tuple[int, ...], setting: str) -> None:
    if setting == "disabled":
        gc.disable()
    elif setting == "threshold 0":
        gc.set_threshold(0, 10, 10)
    else:
        gc.set_threshold(50_000, 10, 10)
    before = gc.get_threshold()
    policy = CollectionGC()
    policy.start()
    assert gc.get_threshold() == before
    policy.finish()
    assert gc.get_threshold() == before


def test_a_threshold_set_during_collection_is_kept(thresholds: tuple[int, ...]) -> None:
    policy = CollectionGC()
    policy.start()
    gc.set_threshold(1234, 5, 5)  # a conftest or test module doing its own tuning
    policy.finish()
    assert gc.get_threshold() == (1234, 5, 5)


def test_unfreeze_on_demand_unfreezes_at_the_first_look() -> None:
    kept: list[object] = []
    kept.append(kept)
    gc.collect()
    gc.freeze()
    try:
        originals = (gc.collect, gc.get_objects)
        unfreeze_on_demand()
        assert gc.collect is not originals[0]
        assert any(o is kept for o in gc.get_objects())  # the call unfroze first
        assert gc.get_freeze_count() == 0
        assert (gc.collect, gc.get_objects) == originals  # the wrappers are gone
    finally:
        gc.unfreeze()


def test_unfreeze_on_demand_does_nothing_without_frozen_objects() -> None:
    gc.unfreeze()
    collect = gc.collect
    unfreeze_on_demand()
    assert gc.collect is collect


def test_tests_see_the_configured_thresholds(pytester: pytest.Pytester) -> None:
    """During collection the raised threshold is in force; the tests run with the interpreter's own (here
    set by a conftest at import), and a threshold a test module sets while being collected is kept."""
    pytester.makeconftest(
        """
        import gc
        gc.set_threshold(800, 10, 10)
        SEEN = []

        def pytest_collection_modifyitems(items):
            SEEN.append(gc.get_threshold())
        """
    )
    pytester.makepyfile(
        test_a=textwrap.dedent(
            f"""
            import gc
            import conftest

            def test_thresholds():
                assert conftest.SEEN == [({COLLECTION_THRESHOLD0}, 10, 10)]
                assert gc.get_threshold() == (800, 10, 10)
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "fastcollect", "--no-fastcollect-auto-daemon")
    result.assert_outcomes(passed=1)
    pytester.makepyfile(test_b="import gc\ngc.set_threshold(900, 10, 10)\n\ndef test_b():\n    assert gc.get_threshold() == (900, 10, 10)\n")
    result = pytester.runpytest_subprocess("-p", "fastcollect", "--no-fastcollect-auto-daemon", "test_b.py")
    result.assert_outcomes(passed=1)
