"""The referee itself must see differences: otherwise 0 differences would prove nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_fastcollect.parity.referee import referee


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_a.py").write_text(
        "import pytest\n"
        "def test_one(): pass\n"
        "def test_two(): assert 0\n"
        "@pytest.mark.skip\n"
        "def test_three(): pass\n"
    )
    return tmp_path


def test_identical_sides_agree(project: Path) -> None:
    cmp = referee(project, ["-p", "no:cacheprovider"], run=True)
    assert cmp.ok, cmp.differences
    assert cmp.plain.returncode == 1
    assert len(cmp.plain.record["items"]) == 3


def test_detects_missing_items_and_deselection(project: Path) -> None:
    cmp = referee(project, ["-p", "no:cacheprovider"], plugin_args=["-k", "not two"])
    text = "\n".join(cmp.differences)
    assert "missing with plugin: test_a.py::test_two" in text
    assert "deselected: 0 (plain) vs 1 (plugin)" in text


def test_detects_outcome_and_exit_code(project: Path) -> None:
    cmp = referee(project, ["-p", "no:cacheprovider"], run=True, plugin_args=["--deselect", "test_a.py::test_two"])
    text = "\n".join(cmp.differences)
    assert "exit code: 1 (plain) vs 0 (plugin)" in text
    assert "outcome test_a.py::test_two [call]" in text


def test_detects_order(project: Path) -> None:
    (project / "conftest.py").write_text(
        "import os\n"
        "def pytest_collection_modifyitems(items):\n"
        "    if os.environ.get('FLIP'): items.reverse()\n"
    )
    import os

    env = dict(os.environ)
    cmp_same = referee(project, ["-p", "no:cacheprovider"], env=env)
    assert cmp_same.ok, cmp_same.differences
    # only the plugin side flips: run the sides by hand through the CLI's building blocks
    from pytest_fastcollect.parity.referee import compare, run_side

    args = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    plain = run_side("plain", project, args, ["-p", "no:fastcollect"], env, 60)
    plugin = run_side("plugin", project, args, [], {**env, "FLIP": "1"}, 60)
    text = "\n".join(compare(plain, plugin).differences)
    assert "order differs from position 0" in text


def test_inactive_plugin_is_a_difference(project: Path) -> None:
    cmp = referee(project, ["-p", "no:cacheprovider"], plugin_args=["--no-fastcollect"])
    assert any("plugin was not active" in d for d in cmp.differences)


def test_cli_exit_codes(project: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "pytest_fastcollect.parity", str(project), "--", "-p", "no:cacheprovider"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "parity: 0 differences" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pytest_fastcollect.parity", str(project), "--plugin-arg=-knot one", "--",
         "-p", "no:cacheprovider"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 1
    assert "missing with plugin: test_a.py::test_one" in bad.stdout
    usage = subprocess.run([sys.executable, "-m", "pytest_fastcollect.parity", str(project / "nope")],
                           capture_output=True, text=True)
    assert usage.returncode == 2
