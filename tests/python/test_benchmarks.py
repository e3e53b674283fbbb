"""benchmarks/run.py's bookkeeping (issue #8): the counts beside every time, the NOT COMPARABLE marking, the
edit-run loop's edits and the generated part of docs/benchmarks.md. No timing is asserted here: speed is
measured by the scripts in benchmarks/, never by tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import report  # noqa: E402
import run  # noqa: E402


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("a::b\n\n1/1000 tests collected (999 deselected) in 0.17s\n",
         {"selected": 1, "collected": 1000, "deselected": 999}),
        ("1000 tests collected in 0.27s\n", {"selected": 1000, "collected": 1000, "deselected": 0}),
        ("no tests collected (5 deselected) in 0.01s\n", {"selected": 0, "collected": 5, "deselected": 5}),
        ("....\n1 passed, 999 deselected in 0.10s\n", {"passed": 1, "deselected": 999}),
        ("=== 3 failed, 2 passed, 1 warning, 2 errors in 1.00s ===\n",
         {"failed": 3, "passed": 2, "warning": 1, "error": 2}),
        ("ERROR: usage: pytest [options]\n", {}),
    ],
)
def test_counts_come_from_pytests_summary_line(output: str, expected: dict[str, int]) -> None:
    assert run.parse_counts(output) == expected


def _row(**sides: list[dict[str, int]]) -> run.Row:
    row = run.Row("suite", "k", "warm")
    for mode, counts in sides.items():
        row.sides[mode] = run.Side(mode, seconds=[1.0 + i / 10 for i in range(len(counts))], counts=counts)
    return row


A = {"selected": 1, "collected": 10, "deselected": 9, "exit": 0}
B = {"selected": 1, "collected": 5, "deselected": 4, "exit": 0}


def test_a_mode_that_loses_tests_is_not_comparable() -> None:
    row = _row(plain=[A, A], **{"warm-cache": [A, A], "rust-0.5.2": [B, B], "daemon": [A, B]})
    run.judge(row)
    assert row.sides["plain"].comparable and row.sides["warm-cache"].comparable
    assert not row.sides["rust-0.5.2"].comparable and "differ from plain" in row.sides["rust-0.5.2"].note
    assert not row.sides["daemon"].comparable  # one of its runs differs
    assert report.cell(row, "warm-cache") == "1.00x"
    assert report.cell(row, "rust-0.5.2").endswith(" NC")


def test_plain_that_varies_makes_nothing_comparable() -> None:
    row = _row(plain=[A, B], **{"warm-cache": [A, A]})
    run.judge(row)
    assert not row.sides["plain"].comparable and not row.sides["warm-cache"].comparable


def test_a_mode_without_runs_is_reported_not_dropped() -> None:
    row = _row(plain=[A])
    row.sides["daemon"] = run.Side("daemon", note="could not start: --daemon-start exit 1")
    run.judge(row)
    assert not row.sides["daemon"].comparable
    text = report.markdown([row], _meta(["plain", "daemon"]))
    assert "no run NC" in text and "**NOT COMPARABLE** could not start" in text


def _meta(mode_list: list[str]) -> dict:
    return {"date": "2026-11-22 00:00", "command": "python benchmarks/run.py", "pairs": 1, "modes": mode_list,
            "versions": {"suite": {"python": "3.11", "pytest": "9.2.0", "pytest-fastcollect": "0.1.0",
                                   "pytest-xdist": ""}},
            "machine": {"cores": 2, "memory_gib": 24, "platform": "Linux", "harness_python": "3.11"}}


def test_markdown_shows_counts_beside_times_and_marks_rows() -> None:
    row = _row(plain=[A], **{"rust-0.5.2": [B]})
    run.judge(row)
    skipped = run.Row("suite", "m", "warm", skipped="`-m slow` selects no test")
    text = report.markdown([row, skipped], _meta(["plain", "rust-0.5.2"]))
    assert "selected 1, collected 10, deselected 9, exit 0" in text
    assert "selected 1, collected 5, deselected 4, exit 0" in text
    assert "**NOT COMPARABLE**" in text
    assert "Not measured: suite m warm (`-m slow` selects no test)" in text


def test_docs_part_is_replaced_between_markers_only(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "benchmarks.md"
    page.write_text(f"# Benchmarks\nintro\n{report.BEGIN}\nold table\n{report.END}\n## later section\n")
    row = _row(plain=[A], **{"warm-cache": [A]})
    run.judge(row)
    report.write_docs([row], _meta(["plain", "warm-cache"]), docs)
    text = page.read_text()
    assert text.startswith("# Benchmarks\nintro\n") and text.endswith("## later section\n")
    assert "old table" not in text and "| suite | k | warm |" in text
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    page.write_text("# Benchmarks\n")  # markers missing: the part is appended
    report.write_docs([row], _meta(["plain", "warm-cache"]), docs)
    assert page.read_text().startswith("# Benchmarks\n\n" + report.BEGIN)


def test_edit_loop_changes_the_file_every_time_and_restores_it(tmp_path: Path) -> None:
    path = tmp_path / "test_x.py"
    path.write_bytes(b"def test_x(): pass\n")
    editor = run.Editor(path)
    seen = set()
    for _ in range(3):
        editor.edit()
        seen.add(path.read_bytes())
    assert len(seen) == 3 and all(content.startswith(b"def test_x(): pass\n") for content in seen)
    editor.restore()
    assert path.read_bytes() == b"def test_x(): pass\n"


def test_node_file_of_an_installed_package(tmp_path: Path) -> None:
    pkg = tmp_path / "venv" / "lib" / "site-packages" / "pkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "tests" / "test_a.py").write_text("")
    target = run.Target("pkg", sys.executable, str(tmp_path / "elsewhere"), [], [], [str(pkg)], False)
    nodeid = "venv/lib/site-packages/pkg/tests/test_a.py::test_a"
    assert run.node_file(target, nodeid) == pkg / "tests" / "test_a.py"


def test_a_run_past_its_timeout_is_killed_with_its_children() -> None:
    start = time.perf_counter()
    child, _ = run.run_child([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
                              "time.sleep(30)"], ".", {}, timeout=0.5)
    assert child.exit_code == -9 and child.counts == {}
    assert time.perf_counter() - start < 10


def test_the_mode_decides_the_command_line() -> None:
    target = run.Target("s", "py", ".", ["-p", "no:cacheprovider"], ["--pyargs", "pkg"], [], False)
    assert run.pytest_cmd("py", target, ["-q", "-k", "x"], ["-p", "no:fastcollect"]) == [
        "py", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "x", "--pyargs", "pkg", "-p", "no:fastcollect"]
    assert run.pytest_cmd("py", target, ["a.py::t"], [], keep_selection=False) == [
        "py", "-m", "pytest", "-p", "no:cacheprovider", "a.py::t"]


def test_results_file_round_trips(tmp_path: Path) -> None:
    """--from-json renders from what a measurement wrote: rows and sides come back equal."""
    import json
    from dataclasses import asdict

    row = _row(plain=[A], **{"daemon": [B]})
    run.judge(row)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**_meta(["plain", "daemon"]), "rows": [asdict(row)]}))
    rows, meta = run.load_results(path)
    assert rows == [row] and meta["modes"] == ["plain", "daemon"]


def test_merge_replaces_the_rows_measured_again_and_says_so() -> None:
    old_k, old_m = _row(plain=[A]), run.Row("suite", "m", "warm")
    old_m.sides["plain"] = run.Side("plain", seconds=[9.0], counts=[A])
    new_k = _row(plain=[B])
    new_meta = {**_meta(["plain", "daemon"]), "date": "2026-12-01 16:00", "command": "python benchmarks/run.py --suites suite",
                "cold_cache_own": True}
    rows, meta = run.merge_results([old_k, old_m], _meta(["plain"]), [new_k], new_meta)
    assert rows == [new_k, old_m]  # same place in the table; the row not measured again stays
    assert "measured again on 2026-12-01 16:00" in meta["command"] and meta["modes"] == ["plain", "daemon"]
    assert meta["cold_cache_own"] is None  # the two runs' cold-cache modes differ: the report says neither


def test_plan_limited_to_some_suites() -> None:
    ns = run.parse_args(["--plan", "docs", "--suites", "click,sympy"])
    assert [w[0] for w in ns.work] == ["click", "sympy"]
    assert len(run.parse_args(["--plan", "docs"]).work) == len(run.PLANS["docs"])
