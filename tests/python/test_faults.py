"""Fault injection: what the user sees when the machine misbehaves around a run, and that the run's result
is plain pytest's all the same (the referee at 0 differences after each fault).

A full cache folder (a 64 KiB tmpfs; root only), cache files replaced while a run holds them, a level of the
daemon stopped with SIGSTOP, 50 clients at once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from pytest_fastcollect.parity.referee import format_report, referee

from _daemonutil import SERVED, age, pytest_argv, run, start, status, write


def _project(root: Path, files: int = 3) -> Path:
    content = {"pytest.ini": "[pytest]\ntestpaths = tests\n"}
    for i in range(files):
        content[f"tests/test_m{i:03d}.py"] = textwrap.dedent(f"""
            import pytest

            @pytest.mark.parametrize("x", range(3))
            def test_value_{i}(x):
                assert x < 3

            def test_other_{i}():
                pass
        """)
    write(root, content)
    age(root)
    return root


def _referee(root: Path, *args: str, **kw: object) -> None:
    cmp = referee(root, list(args), run=True, timeout=300, **kw)  # type: ignore[arg-type]
    assert cmp.ok, format_report(cmp)


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 64 KiB tmpfs (needs root: mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_cache_folder_changes_nothing_pytest_reports(tmp_path: Path, tiny_fs: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's cache folder on a full file system: the discovery cache and the records cannot be written;
    the run says so in its header and is plain pytest's run otherwise."""
    root = _project(tmp_path / "proj", files=150)
    filler = tiny_fs / "filler"
    with open(filler, "wb") as fh:  # leave ~8 KiB: the databases do not fit
        try:
            fh.write(b"x" * (56 * 1024))
        except OSError:
            pass
    args = ["-o", f"cache_dir={tiny_fs / 'cache'}", "-k", "value_1"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tiny_fs / "xdg"))  # the fallback folder is full too
    proc = run(root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"fastcollect:.*(not updated|not written|full|unusable)", proc.stdout), proc.stdout
    _referee(root, *args)
    _referee(root, *args, prime=["-o", f"cache_dir={tiny_fs / 'cache'}"])


def test_cache_files_replaced_while_a_run_holds_them(tmp_path: Path) -> None:
    """A test of the run replaces the discovery cache and the records database with garbage: the run
    finishes as plain pytest; the next run sets both aside, rebuilds them, and later runs use them again."""
    root = _project(tmp_path / "proj")
    cache = root / ".pytest_cache" / "d" / "fastcollect"
    write(root, {"tests/test_zz_vandal.py": f"""
        import os
        from pathlib import Path

        def test_vandal():
            for db in Path({str(cache)!r}).glob("*.sqlite"):
                tmp = db.with_suffix(".new")
                tmp.write_bytes(os.urandom(9000))
                os.replace(tmp, db)
    """})
    age(root)
    assert run(root, "-q").returncode == 0  # creates both
    vandal = run(root, "-q")
    assert vandal.returncode == 0, vandal.stdout
    (root / "tests/test_zz_vandal.py").unlink()
    after = run(root, "-k", "value_2")
    assert after.returncode == 0, after.stdout
    assert "rebuilt" in after.stdout, after.stdout
    assert list(cache.glob("*.corrupt")), list(cache.iterdir())
    _referee(root, "-k", "value_2", prime=[])
    again = run(root, "-k", "value_2")
    assert "test files left unimported" in again.stdout and "rebuilt" not in again.stdout, again.stdout


def _level1_pid(root: Path) -> int:
    match = re.search(r"level 1\s+pid (\d+), ready", status(root).stdout)
    assert match, status(root).stdout
    return int(match.group(1))


def test_a_stopped_level_1_is_replaced(tmp_path: Path, daemon_env: Path) -> None:
    """SIGSTOP to the level 1 that holds the socket: the next run waits for it at most the client's start
    deadline, then runs locally with one -v line; level 0 replaces the stopped level within seconds, and
    the run after that is served again."""
    from pytest_fastcollect.daemon.client import START_DEADLINE

    root = _project(tmp_path / "proj")
    start(root)
    stopped = _level1_pid(root)
    os.kill(stopped, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc = run(root, "-v")
        assert time.monotonic() - t0 < START_DEADLINE + 10
        assert proc.returncode == 0 and SERVED not in proc.stdout, proc.stdout
        assert len(re.findall(r"^fastcollect: daemon: ran locally \(", proc.stdout, re.M)) == 1, proc.stdout
        end = time.monotonic() + 60
        while True:
            text = status(root).stdout
            match = re.search(r"level 1\s+pid (\d+), ready", text)
            if match and int(match.group(1)) != stopped:
                break
            assert time.monotonic() < end, text
            time.sleep(0.3)
        assert SERVED in run(root, "-v").stdout
        _referee(root, daemon=True)
    finally:
        try:
            os.kill(stopped, signal.SIGCONT)
            os.kill(stopped, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_fifty_concurrent_clients(tmp_path: Path, daemon_env: Path) -> None:
    root = _project(tmp_path / "proj")
    start(root)
    procs = [subprocess.Popen(pytest_argv("-q"), cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(50)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 50, [o[-500:] for p, o in zip(procs, outs) if p.returncode]
    assert all("12 passed" in o for o in outs)
    served = int(re.search(r"(\d+) served", status(root).stdout).group(1))
    assert served >= 40, status(root).stdout
    _referee(root, daemon=True)
    shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
