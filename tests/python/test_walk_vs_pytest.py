"""The walker must find every file pytest collects from (a superset), on every corpus case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_fastcollect.plugin import STATE

from _corpus import corpus_cases


class _Capture:
    def __init__(self) -> None:
        self.session: pytest.Session | None = None
        self.state: Any = None
        self.collected_files: set[str] = set()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        fspath = report.nodeid.split("::")[0]
        if fspath.endswith(".py"):
            self.collected_files.add(fspath)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.session = session
        self.state = session.config.stash[STATE]  # released at unconfigure


@pytest.mark.parametrize("case", corpus_cases())
def test_walk_covers_pytest_collection(
    case: str, corpus_copy, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = corpus_copy(case)
    monkeypatch.chdir(root)
    cap = _Capture()
    pytester.inline_run("--collect-only", "-p", "no:cacheprovider", str(root), plugins=[cap])
    assert cap.session is not None
    state = cap.state
    assert state.failure is None
    walked = {Path(f).relative_to(root).as_posix() for f in state.report.files}
    # pytest also makes reports for conftest-less dirs etc.; only files that held tests or errors matter
    missing = {f for f in cap.collected_files if f not in walked}
    assert not missing, f"walker missed files pytest collected: {sorted(missing)}"
