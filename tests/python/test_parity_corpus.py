"""The differential referee at 0 differences on every corpus case, collect-only and full run."""

from __future__ import annotations

import pytest

from pytest_fastcollect.parity.referee import format_report, referee

from _corpus import corpus_cases

BASE_ARGS = ["-p", "no:cacheprovider"]


@pytest.mark.parametrize("case", corpus_cases())
@pytest.mark.parametrize("mode", ["collect", "run"])
def test_corpus_parity(case: str, mode: str, corpus_copy) -> None:
    root = corpus_copy(case)
    cmp = referee(root, BASE_ARGS, run=(mode == "run"), timeout=120)
    report = format_report(cmp)
    assert cmp.ok, report
    # the comparison is not vacuous: the plugin side scanned files, and both sides recorded something
    fc = cmp.plugin.record["fastcollect"]
    assert fc["enabled"] and fc["files_scanned"] >= 1, report
    assert cmp.plain.record["items"] or cmp.plain.record["collect_errors"], report


@pytest.mark.parametrize("case", corpus_cases())
def test_corpus_parity_through_daemon(case: str, corpus_copy, daemon_env) -> None:
    root = corpus_copy(case)
    cmp = referee(root, BASE_ARGS, run=True, timeout=120, daemon=True)
    report = format_report(cmp)
    assert cmp.ok, report
    assert cmp.plugin.record["fastcollect"]["served_by_daemon"], report
    # a second run from the same warm template (modules already imported) is still identical
    again = referee(root, BASE_ARGS, run=True, timeout=120, daemon=True)
    assert again.ok, format_report(again)


@pytest.mark.parametrize("daemon", [False, True], ids=["cache", "warm-workers"])
@pytest.mark.parametrize("case", corpus_cases())
def test_corpus_parity_under_xdist(case: str, daemon: bool, corpus_copy, request: pytest.FixtureRequest) -> None:
    """`-n 2` on both sides: the same tests with the same outcomes (xdist reorders runs: compared as sets) and
    the same exit code; the controller writes the cache, the workers only read it. With the daemon, the
    served run is the controller and its workers are forked from the warm template."""
    pytest.importorskip("xdist")
    if daemon:
        request.getfixturevalue("daemon_env")
    root = corpus_copy(case)
    cmp = referee(root, [*BASE_ARGS, "-n", "2", "-p", "no:randomly"], run=True, timeout=180, daemon=daemon)
    assert cmp.ok, format_report(cmp)
