"""`--fastcollect-affected` and `--fastcollect-affected-since=REF` (watch/affected.py), end to end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _daemonutil import write


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


def _header(proc: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"^fastcollect: affected: .*$", proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return match.group(0)


def _save(path: Path, text: str) -> None:
    path.write_text(text)
    t = time.time() + 2
    os.utime(path, (t, t))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, {
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
        "tests/helper.py": "X = 1\n",
        "tests/test_a.py": "import helper\ndef test_a(): assert helper.X == 1\n",
        "tests/test_b.py": "def test_b(): pass\n",
    })
    return tmp_path


def test_since_the_last_run(project: Path) -> None:
    first = _run(project, "--fastcollect-affected")
    assert first.returncode == 0 and "no earlier --fastcollect-affected run" in _header(first)
    assert "2 passed" in first.stdout
    unchanged = _run(project, "--fastcollect-affected")
    assert unchanged.returncode == 5 and "0 test file(s)" in _header(unchanged) and "nothing changed" in _header(unchanged)
    _save(project / "tests" / "helper.py", "X = 2\n")
    edited = _run(project, "--fastcollect-affected")
    assert edited.returncode == 1 and "1 test file reaches tests/helper.py" in _header(edited)
    assert "1 failed in" in edited.stdout and "test_b" not in edited.stdout
    again = _run(project, "--fastcollect-affected")  # nothing changed, but test_a failed last
    assert again.returncode == 1 and "with tests that failed last" in _header(again)
    _save(project / "tests" / "helper.py", "X = 1\n")
    fixed = _run(project, "--fastcollect-affected", "-v")
    assert fixed.returncode == 0 and "tests/test_a.py::test_a PASSED" in fixed.stdout and "test_b" not in fixed.stdout


def test_a_new_test_file_and_a_data_file(project: Path) -> None:
    _run(project, "--fastcollect-affected")
    write(project, {"tests/test_c.py": "def test_c(): pass\n"})
    added = _run(project, "--fastcollect-affected", "-v")
    assert "1 test file(s)" in _header(added) and "tests/test_c.py::test_c PASSED" in added.stdout
    write(project, {"tests/data.json": "{}\n"})
    data = _run(project, "--fastcollect-affected")
    assert "the whole selection" in _header(data) and "is not a Python file" in _header(data)
    assert "3 passed" in data.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_since_a_git_reference_also_under_xdist(project: Path) -> None:
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=project, check=True)
    _save(project / "tests" / "test_b.py", "def test_b(): assert 0\n")
    for extra in ([], ["-n", "2", "-p", "xdist"]):
        proc = _run(project, "--fastcollect-affected-since=HEAD", "-p", "no:cacheprovider", *extra)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "1 changed since HEAD: 1 test file reaches tests/test_b.py" in _header(proc)
        assert "1 failed in" in proc.stdout or "1 failed" in proc.stdout.splitlines()[-1]
        assert "Different tests were collected" not in proc.stdout
    bad = _run(project, "--fastcollect-affected-since=no-such-ref")
    assert bad.returncode == 4 and "bad revision" in bad.stderr


def test_usage_errors(project: Path) -> None:
    no_cache = _run(project, "--fastcollect-affected", "-p", "no:cacheprovider")
    assert no_cache.returncode == 4 and "needs pytest's cache plugin" in no_cache.stderr
    both = _run(project, "--fastcollect-affected", "--fastcollect-only=tests/test_a.py")
    assert both.returncode == 4 and "use one" in both.stderr


def test_watch_paths_from_the_ini(project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\nfastcollect_watch_paths =\n    data/*: tests/test_b.py\n")
    write(project, {"data/rows.csv": "a\n"})
    _run(project, "--fastcollect-affected")
    _save(project / "data" / "rows.csv", "b\n")
    proc = _run(project, "--fastcollect-affected", "-v")
    assert "fastcollect_watch_paths maps data/rows.csv to 1 test file(s)" in _header(proc)
    assert "tests/test_b.py::test_b PASSED" in proc.stdout and "test_a" not in proc.stdout.split("affected:")[1]
    (project / "pytest.ini").write_text("[pytest]\nfastcollect_watch_paths =\n    no colon here\n")
    bad = _run(project, "--fastcollect-affected")
    assert bad.returncode == 4 and "fastcollect_watch_paths: expected 'PATTERN: TARGET ...'" in bad.stderr
