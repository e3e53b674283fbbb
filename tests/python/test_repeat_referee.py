"""The repeating referee (parity/repeat.py) must tell a flaky test from a difference, and see a difference
that shows in only some runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_fastcollect.parity.referee import Side
from pytest_fastcollect.parity.repeat import fisher_two_sided, judge, repeat_referee


def test_fisher_two_sided_matches_known_values() -> None:
    # 0 of 20 against 7 of 20 (the example): significant at 0.01
    assert fisher_two_sided(0, 20, 7, 13) == pytest.approx(0.008316, abs=1e-5)
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 0.486
    assert fisher_two_sided(3, 1, 1, 3) == pytest.approx(0.4857, abs=1e-3)
    assert fisher_two_sided(5, 5, 5, 5) == pytest.approx(1.0)
    assert fisher_two_sided(0, 10, 10, 0) == pytest.approx(2 / 184756, rel=1e-6)


def _side(name: str, outcome: str, code: int, items: tuple[str, ...] = ("t.py::a", "t.py::b")) -> Side:
    reports = [["t.py::a", "call", "passed", False], ["t.py::b", "call", outcome, False]]
    record = {"items": list(items), "collect_errors": [], "deselected": 0, "reports": reports,
              "fastcollect": {"enabled": True}}
    summary = "2 passed" if outcome == "passed" else "1 failed, 1 passed"
    return Side(name, [], code, f"== {summary} in 0.1s ==\n", "", record)


def _runs(name: str, fails: int, n: int) -> list[Side]:
    return [_side(name, "failed" if i < fails else "passed", 1 if i < fails else 0) for i in range(n)]


def test_flaky_on_both_sides_is_not_a_difference() -> None:
    verdict = judge(_runs("plain", 3, 10), _runs("plugin", 4, 10))
    assert verdict.ok, verdict.differences
    assert any(line.startswith("outcome t.py::b") for line in verdict.flaky)


def test_a_difference_in_a_third_of_the_runs_is_found() -> None:
    verdict = judge(_runs("plain", 0, 20), _runs("plugin", 7, 20))
    assert not verdict.ok
    assert any("outcome t.py::b" in d and "distribution differs" in d for d in verdict.differences), verdict.differences


def test_a_deterministic_difference_is_found_with_two_runs() -> None:
    verdict = judge(_runs("plain", 0, 2), _runs("plugin", 2, 2))
    assert any("in every run" in d for d in verdict.differences), verdict.differences


def test_one_plugin_run_collecting_otherwise_is_a_difference() -> None:
    plugin = _runs("plugin", 0, 5)
    plugin[3] = _side("plugin", "passed", 0, items=("t.py::a",))
    verdict = judge(_runs("plain", 0, 5), plugin)
    assert any(d.startswith("items: plugin runs [4]") for d in verdict.differences), verdict.differences


FLAKY_ONLY_WITH_PLUGIN = """
    import os
    import pytest

    def pytest_configure(config):
        global PLUGIN
        PLUGIN = config.pluginmanager.has_plugin("fastcollect")

    @pytest.fixture
    def plugin_flake():
        counter = os.path.join(os.path.dirname(__file__), "count")
        n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
        open(counter, "w").write(str(n))
        return PLUGIN and n % 3 != 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(FLAKY_ONLY_WITH_PLUGIN.replace("\n    ", "\n"))
    (tmp_path / "test_a.py").write_text(
        "import random\n"
        "def test_stable(): pass\n"
        "def test_flaky_everywhere(): assert random.random() < 0.6\n"
        "def test_flaky_with_plugin(plugin_flake): assert not plugin_flake\n"
    )
    return tmp_path


def test_end_to_end_flaky_and_one_sided(project: Path) -> None:
    """A test flaky on both sides is reported as flaky; one that fails in 2 of 3 plugin runs only is a
    difference (0 of 9 against 6 of 9: p = 0.009)."""
    verdict = repeat_referee(project, ["-p", "no:cacheprovider"], 9, [], None, 120)
    differences = "\n".join(verdict.differences)
    assert "outcome test_a.py::test_flaky_with_plugin" in differences and "distribution differs" in differences
    assert "test_flaky_everywhere" not in differences
    assert "test_stable" not in differences + "\n".join(verdict.flaky)


def test_cli_repeat(project: Path) -> None:
    (project / "conftest.py").write_text("")
    (project / "test_a.py").write_text("def test_stable(): pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest_fastcollect.parity", str(project), "--run", "--repeat", "3",
                           "--", "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parity: 0 differences in 3 runs per side" in proc.stdout
    assert proc.stderr.count("run ") == 3


def test_cli_repeat_json_says_why_a_run_was_not_served(project: Path) -> None:
    """--json gives, per plugin run, the daemon's header line or the plugin's -v daemon note: a run the
    daemon did not serve says why instead of an empty string."""
    (project / "conftest.py").write_text("")
    (project / "test_a.py").write_text("def test_stable(): pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest_fastcollect.parity", str(project), "--run", "--repeat", "2",
                           "--json", "--plugin-arg=--no-fastcollect-auto-daemon", "--", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["plugin"]["served"] == ["", ""]
    assert verdict["plugin"]["daemon_notes"] == ["off (--no-fastcollect-auto-daemon)"] * 2
