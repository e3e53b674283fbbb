"""The discovery cache end to end: warm runs, edits, switches, fallbacks, corruption, concurrency, kill -9."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_fastcollect.parity.referee import format_report, referee

HEADER = re.compile(r"fastcollect \S+: scanned (\d+) files \((\d+) from cache, (\d+) parsed\)")


def header(result: pytest.RunResult) -> tuple[int, int, int]:
    for line in result.stdout.lines:
        m = HEADER.search(line)
        if m:
            return int(m.group(1)), int(m.group(2)), int(m.group(3))
    raise AssertionError("no fastcollect header line:\n" + result.stdout.str())


def db_files(root: Path) -> list[Path]:
    return sorted((root / ".pytest_cache" / "d" / "fastcollect").glob("discovery-v*.sqlite"))


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for i in range(5):
        pytester.makepyfile(**{f"test_m{i}": f"def test_a{i}(): pass\ndef test_b{i}(): pass\n"})
    return pytester


def test_second_run_reads_the_cache(project: pytest.Pytester) -> None:
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 0, 5)
    assert len(db_files(project.path)) == 1
    assert (project.path / ".pytest_cache" / ".gitignore").exists()  # made through pytest's own Cache
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)


def test_edits_are_seen_even_with_same_size_and_mtime(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    target = project.path / "test_m0.py"
    st = target.stat()
    target.write_text(target.read_text().replace("test_a0", "test_z0"))  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    result = project.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_m0.py::test_z0"])
    assert header(project.runpytest_subprocess("--collect-only"))[1] == 5


def test_touch_is_a_rehash_not_a_parse(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    time.sleep(1.1)  # leave the racy window of the rows just written
    project.runpytest_subprocess("--collect-only")
    os.utime(project.path / "test_m1.py")
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)


def test_new_and_deleted_files(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    (project.path / "test_m4.py").unlink()
    project.makepyfile(test_new="def test_new(): pass\n")
    result = project.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_new.py::test_new"])
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)


def test_no_cache_switches(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "--no-fastcollect-cache")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 5 files (no cache)*"])
    assert db_files(project.path) == []
    project.makeini("[pytest]\nfastcollect_cache = false\n")
    result = project.runpytest_subprocess("--collect-only")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 5 files (no cache)*"])


def test_cache_clear(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    assert header(project.runpytest_subprocess("--collect-only", "--fastcollect-cache-clear")) == (5, 0, 5)
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)


def test_without_cacheprovider_uses_user_cache_dir(project: pytest.Pytester, tmp_path: Path) -> None:
    assert header(project.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")) == (5, 0, 5)
    assert not (project.path / ".pytest_cache").exists()
    assert list((tmp_path / "xdg" / "pytest-fastcollect").glob("*/discovery-v*.sqlite"))
    assert header(project.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")) == (5, 5, 0)


def test_pytest_cache_clear_does_not_race_the_cache(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    result = project.runpytest_subprocess("--collect-only", "--cache-clear")
    assert result.ret == 0
    assert header(result)[0] == 5


@pytest.mark.parametrize("damage", ["truncate", "random", "empty-wal-garbage"])
def test_corrupt_cache_is_rebuilt_with_one_warning(project: pytest.Pytester, damage: str) -> None:
    project.runpytest_subprocess("--collect-only")
    (db,) = db_files(project.path)
    data = db.read_bytes()
    rng = random.Random(1234)
    if damage == "truncate":
        db.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        db.write_bytes(bytes(rng.randrange(256) for _ in range(8192)))
    else:
        db.write_bytes(b"SQLite format 3\x00" + bytes(rng.randrange(256) for _ in range(4080)))
    result = project.runpytest_subprocess("--collect-only", "-q")
    assert result.ret == 0
    assert len([ln for ln in result.stdout.lines if "::" in ln]) == 10
    verbose = project.runpytest_subprocess("--collect-only")
    assert verbose.ret == 0
    n, cached, parsed = header(verbose)
    assert n == 5 and cached + parsed == 5
    warnings = [ln for ln in verbose.stdout.lines if ln.startswith("fastcollect: ")]
    assert len(warnings) <= 1, warnings


def test_corrupt_cache_warning_is_one_line(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--collect-only")
    (db,) = db_files(project.path)
    db.write_bytes(b"this is not a database" * 100)
    result = project.runpytest_subprocess("--collect-only")
    warnings = [ln for ln in result.stdout.lines if ln.startswith("fastcollect: ")]
    assert len(warnings) == 1 and "set aside" in warnings[0], result.stdout.str()
    assert header(result) == (5, 0, 5)
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)


def test_concurrent_runs_never_surface_sqlite_errors(project: pytest.Pytester) -> None:
    env = dict(os.environ)
    root = project.path
    for round_ in range(20):
        (root / "test_m0.py").write_text(f"def test_round_{round_}(): pass\n" + "def test_b0(): pass\n")
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:randomly"],
                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for _ in range(8)
        ]
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out
            assert "database is locked" not in out and "readonly database" not in out, out
            assert not [ln for ln in out.splitlines() if ln.startswith("fastcollect: ")], out
            assert f"test_round_{round_}" in out


def test_kill_9_during_writes_leaves_an_openable_cache(pytester: pytest.Pytester, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # enough files that the write transaction takes a while; kill at random moments of many first runs
    for d in range(20):
        pkg = pytester.mkdir(f"d{d}")
        for i in range(60):
            pkg.joinpath(f"test_d{d}_f{i}.py").write_text("".join(f"def test_{j}(): pass\n" for j in range(10)))
    rng = random.Random(42)
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                 "--fastcollect-cache-clear"], cwd=pytester.path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # and once without clearing, so a half-written WAL from the killed run is met by the next one
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=pytester.path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = pytester.runpytest_subprocess("--collect-only")
    assert result.ret == 0
    n, cached, parsed = header(result)
    assert n == 1200 and cached + parsed == 1200
    assert not [ln for ln in result.stdout.lines if ln.startswith("fastcollect: ")], result.stdout.str()
    assert header(pytester.runpytest_subprocess("--collect-only")) == (1200, 1200, 0)
    result.stdout.fnmatch_lines(["*12000 tests collected*"])


@pytest.mark.parametrize("case", ["conditional_defs", "marks_and_keywords", "packages", "outcomes"])
def test_parity_with_warm_cache_after_edit_and_corruption(case: str, corpus_copy, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = corpus_copy(case)
    for step in ("cold", "warm", "edit", "corrupt"):
        if step == "edit":
            target = sorted(root.rglob("test_*.py"))[0]
            target.write_text(target.read_text() + "\n\ndef test_added_by_edit():\n    pass\n")
        if step == "corrupt":
            for db in root.glob(".pytest_cache/d/fastcollect/discovery-v*.sqlite"):
                db.write_bytes(b"\x00garbage" * 512)
        cmp = referee(root, [], run=True, timeout=120)
        assert cmp.ok, f"{step}:\n" + format_report(cmp)
    assert list(root.glob(".pytest_cache/d/fastcollect/discovery-v*.sqlite"))


def test_read_only_open_uses_rows_and_never_writes(tmp_path: Path) -> None:
    from pytest_fastcollect.cache import CacheLocation
    from pytest_fastcollect.discovery import scan
    from pytest_fastcollect.paths import PathRules

    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(3):
        (tree / f"test_r{i}.py").write_text(f"def test_{i}(): pass\n")
    rules = PathRules(roots=[str(tree)], python_files=["test_*.py"], norecursedirs=[".*"])
    db = tmp_path / "d.sqlite"
    first = scan(rules, ["test"], ["Test"], 1, CacheLocation(str(db), False, "t"))
    assert first.cache.parsed == 3 and first.cache.wrote
    # the writer checkpoints its WAL into the main file when it closes; a reader may create the -shm/-wal
    # lock files SQLite needs for WAL mode, but must add no frame and change no byte of the database
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    (tree / "test_r0.py").write_text("def test_changed(): pass\n")
    ro = scan(rules, ["test"], ["Test"], 1, CacheLocation(str(db), True, "t"))
    assert ro.cache.read_only and not ro.cache.wrote
    assert ro.cache.parsed == 1 and ro.cache.trusted + ro.cache.rehashed == 2
    assert [f.name for f in ro.modules[0].functions] == ["test_changed"]
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    wal = tmp_path / "d.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_read_only_open_of_a_missing_or_corrupt_file(tmp_path: Path) -> None:
    from pytest_fastcollect.cache import CacheLocation
    from pytest_fastcollect.discovery import scan
    from pytest_fastcollect.paths import PathRules

    (tmp_path / "test_x.py").write_text("def test_x(): pass\n")
    rules = PathRules(roots=[str(tmp_path / "test_x.py")], python_files=["test_*.py"], norecursedirs=[])
    missing = scan(rules, ["test"], ["Test"], 1, CacheLocation(str(tmp_path / "none.sqlite"), True, "t"))
    assert missing.cache.parsed == 1 and not (tmp_path / "none.sqlite").exists()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 100)
    r = scan(rules, ["test"], ["Test"], 1, CacheLocation(str(bad), True, "t"))
    assert r.cache.parsed == 1 and r.cache.warning
    assert bad.read_bytes() == b"garbage" * 100  # never rebuilt in read-only mode


def test_xdist_runs_share_one_cache(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    for _ in range(3):
        result = project.runpytest_subprocess("-n", "2", "-p", "no:randomly")
        assert result.ret == 0
        result.assert_outcomes(passed=10)
        assert "database is locked" not in result.stdout.str() + result.stderr.str()
    assert header(project.runpytest_subprocess("--collect-only")) == (5, 5, 0)
