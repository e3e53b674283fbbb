"""A served run inherits what a plain `pytest` inherits from its caller (daemon/procstate.py), and runs that
measure from their start are never forked from the warm project (measuring.py). Each test runs the
same command plain (`-p no:fastcollect`) and served, and compares what the caller sees."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _daemonutil import SERVED, age, pytest_argv, run, start, write


@pytest.fixture
def project(tmp_path: Path, daemon_env: Path) -> Path:
    root = tmp_path / "proj"
    write(root, {
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
        "pkg/__init__.py": "X = 1\nY = 2\n\ndef f():\n    return X\n\ndef g():\n    return Y\n",
        "tests/conftest.py": "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))\n",
        "tests/test_pkg.py": "import pkg\n\ndef test_f():\n    assert pkg.f() == 1\n",
    })
    age(root)
    return root


def _served_twice(root: Path, *args: str, expect: str = SERVED) -> list[subprocess.CompletedProcess[str]]:
    out = []
    for _ in range(2):
        proc = run(root, *args, "-v")
        assert expect in proc.stdout, proc.stdout
        out.append(proc)
    return out


def _report_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(("pkg", "TOTAL", "Name"))]


# ---- tools that measure from the start ------------------------------------------------------------------


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["no-xdist", "xdist"])
def test_coverage_report_through_the_daemon_is_plains(project: Path, xdist: tuple[str, ...]) -> None:
    """pytest-cov measures from its start: module-level lines of pkg ran in a level-1 template before it
    (served runs reported 17% where plain reports 83%). Served from level 0, the report is plain's."""
    pytest.importorskip("pytest_cov")
    if xdist:
        pytest.importorskip("xdist")
    args = ("--cov=pkg", "--cov-report=term-missing", *xdist)
    plain = run(project, *args, "-p", "no:fastcollect")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    expected = _report_lines(plain.stdout)
    assert any(ln.split()[1:4] == ["6", "1", "83%"] for ln in expected if ln.startswith("TOTAL")), plain.stdout
    start(project)
    for proc in _served_twice(project, *args, expect="from level 0"):
        assert "coverage (pytest-cov --cov) measures from its start" in proc.stdout
        assert _report_lines(proc.stdout) == expected, proc.stdout
    # without --cov the same daemon serves from level 1 (pytest-cov is installed, but measures nothing)
    assert "from level 0" not in run(project, "-v").stdout


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (["-X", "importtime", "-m", "pytest"], "-X importtime"),
        (["-X", "tracemalloc", "-m", "pytest"], "tracemalloc is tracing"),
        (["-m", "cProfile", "-o", os.devnull, "-m", "pytest"], "a profile function is set"),
    ],
    ids=["importtime", "tracemalloc", "cprofile"],
)
def test_a_measured_interpreter_runs_locally(project: Path, how: list[str], reason: str) -> None:
    start(project)
    proc = subprocess.run([sys.executable, *how, "-v"], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert SERVED not in proc.stdout
    assert f"ran locally ({reason}" in proc.stdout, proc.stdout


def test_coverage_run_of_pytest_runs_locally_with_plains_report(project: Path, tmp_path: Path) -> None:
    """`coverage run -m pytest`: the client is traced from interpreter start-up; a fork of the daemon is not."""
    pytest.importorskip("coverage")
    start(project)

    def report(*extra: str) -> str:
        data = tmp_path / f"cov{len(extra)}"
        env = {**os.environ, "COVERAGE_FILE": str(data)}
        proc = subprocess.run([sys.executable, "-m", "coverage", "run", "--source=pkg", "-m", "pytest", "-v", *extra],
                              cwd=project, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if not extra:
            assert SERVED not in proc.stdout and "ran locally (a trace function is set" in proc.stdout, proc.stdout
        out = subprocess.run([sys.executable, "-m", "coverage", "report", "-m"], cwd=project, capture_output=True,
                             text=True, env=env)
        return "\n".join(_report_lines(out.stdout))

    assert report() == report("-p", "no:fastcollect")


def test_pythonhashseed_random_runs_locally(project: Path) -> None:
    start(project)
    proc = run(project, "-v", env={**os.environ, "PYTHONHASHSEED": "random"})
    assert proc.returncode == 0 and SERVED not in proc.stdout, proc.stdout
    assert "ran locally (PYTHONHASHSEED=random" in proc.stdout


# ---- what the caller passes on --------------------------------------------------------------------------

SLOW = {"tests/test_slow.py": "import time\n\ndef test_slow(tmp_path):\n    open(%r, 'w').close()\n    time.sleep(2)\n"}


def _slow_run(root: Path, flag: Path, *args: str, ignore: tuple[int, ...] = (), **kw: Any) -> subprocess.Popen[str]:
    def preexec() -> None:
        for sig in ignore:
            signal.signal(sig, signal.SIG_IGN)

    proc = subprocess.Popen(pytest_argv("tests/test_slow.py", *args), cwd=root, stdout=subprocess.PIPE, text=True,
                            preexec_fn=preexec, **kw)
    end = time.monotonic() + 60
    while not flag.exists():
        assert time.monotonic() < end and proc.poll() is None, "the test did not start"
        time.sleep(0.02)
    flag.unlink()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP-nohup", "SIGINT-background-job"])
def test_a_signal_the_caller_ignores_does_not_reach_the_run(project: Path, tmp_path: Path, sig: int) -> None:
    """nohup (SIGHUP ignored) and a script's background job (SIGINT ignored): plain pytest never sees the
    signal and finishes with 0; a served run must too (the client forwarded it, the child reset it: 129 / 2)."""
    flag = tmp_path / "started"
    write(project, {k: v % str(flag) for k, v in SLOW.items()})
    age(project)
    codes = {}
    for side, args in (("plain", ("-p", "no:fastcollect")), ("served", ())):
        if side == "served":
            start(project, "tests/test_slow.py")
        proc = _slow_run(project, flag, *args, ignore=(sig,))
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert side == "plain" or SERVED in out, out
        codes[side] = proc.returncode
    assert codes == {"plain": 0, "served": 0}


def test_sigterm_kills_a_served_client_as_it_kills_plain_pytest(project: Path, tmp_path: Path) -> None:
    """Plain pytest dies by SIGTERM (its parent sees WIFSIGNALED, -15); a served client re-raises the
    signal that ended its run instead of exiting 143."""
    flag = tmp_path / "started"
    write(project, {k: v % str(flag) for k, v in SLOW.items()})
    age(project)
    codes = {}
    for side, args in (("plain", ("-p", "no:fastcollect")), ("served", ())):
        if side == "served":
            start(project, "tests/test_slow.py")
        proc = _slow_run(project, flag, *args)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        codes[side] = proc.returncode
    assert codes == {"plain": -signal.SIGTERM, "served": -signal.SIGTERM}


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
def test_os_exit_at_import_prints_what_plain_prints(project: Path, unbuffered: str) -> None:
    """A test module calling os._exit(3) at import: plain prints its header lines (stdout unbuffered) or
    not (block-buffered pipe) and exits 3; the served run's stdout is built as the interpreter builds it."""
    write(project, {"tests/test_exit.py": "import os\nos._exit(3)\n"})
    age(project)
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    if not unbuffered:
        del env["PYTHONUNBUFFERED"]
    plain = run(project, "-p", "no:fastcollect", env=env)
    start_proc = subprocess.run(pytest_argv("--daemon-start"), cwd=project, capture_output=True, text=True, env=env)
    assert start_proc.returncode == 0, start_proc.stdout
    served = run(project, env=env)
    assert plain.returncode == served.returncode == 3
    assert ("test session starts" in plain.stdout) == ("test session starts" in served.stdout), served.stdout
    assert ("rootdir:" in plain.stdout) == ("rootdir:" in served.stdout)


def test_closed_stdout_runs_once_as_plain(project: Path, tmp_path: Path) -> None:
    """`pytest >&-`: stdout closed. Served, the run used to get /dev/null there, then fail flushing None and
    run again locally (conftests imported twice, 34 traceback lines). Now it fails exactly as plain does."""
    marker = tmp_path / "imports"
    write(project, {"tests/conftest.py": f"open({str(marker)!r}, 'a').write('x')\n"})
    age(project)
    results = {}
    for side, args in (("plain", ("-p", "no:fastcollect")), ("served", ())):
        if side == "served":
            start(project)
        marker.unlink(missing_ok=True)
        proc = subprocess.run(pytest_argv(*args), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=120, preexec_fn=lambda: os.close(1))
        results[side] = (proc.returncode, proc.stderr.count("Traceback"), marker.read_text() if marker.exists() else "")
    assert results["served"] == results["plain"]


def test_an_inherited_fd_reaches_the_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller's open fd without close-on-exec (a jobserver's, `3>file`) is there in a plain run; served too,
    at the same number."""
    write(project, {"tests/test_fd.py": "import os\n\ndef test_fd():\n    os.write(int(os.environ['FD']), b'hello')\n"})
    age(project)
    got = {}
    target = 42
    monkeypatch.setenv("FD", str(target))  # (the environment is part of the daemon's key)
    for side, args in (("plain", ("-p", "no:fastcollect")), ("served", ("-v",))):
        if side == "served":
            start(project)
        r, w = os.pipe()
        os.dup2(w, target)
        os.close(w)
        try:
            proc = subprocess.Popen(pytest_argv(*args), cwd=project, stdout=subprocess.PIPE, text=True,
                                    pass_fds=(target,))
        finally:
            os.close(target)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert side == "plain" or SERVED in out, out
        got[side] = os.read(r, 100)
        os.close(r)
    assert got == {"plain": b"hello", "served": b"hello"}


def test_limits_and_nice_value_reach_the_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project, {"tests/test_lim.py": (
        "import os, resource\n\ndef test_lim():\n"
        "    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 200\n"
        "    assert os.nice(0) == int(os.environ['NICE'])\n")})
    age(project)
    import resource

    base = os.nice(0)
    monkeypatch.setenv("NICE", str(base + 3))
    start(project)

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        os.nice(3)

    for args in (("-p", "no:fastcollect"), ("-v",)):
        proc = subprocess.run(pytest_argv(*args), cwd=project, capture_output=True, text=True, timeout=120,
                              preexec_fn=preexec)
        assert proc.returncode == 0, proc.stdout
    assert SERVED in proc.stdout


def test_stdin_newlines_are_not_translated(project: Path) -> None:
    """create_stdio opens sys.stdin with newline="\\n": a "\\r\\n" arrives as it was sent."""
    write(project, {"tests/test_in.py": "import sys\n\ndef test_in():\n    assert sys.stdin.read() == 'a\\r\\nb'\n"})
    age(project)
    start(project)
    for args in (("-p", "no:fastcollect", "-s"), ("-s", "-v")):
        proc = subprocess.run(pytest_argv(*args), cwd=project, capture_output=True, text=True, timeout=120,
                              input="a\r\nb")
        assert proc.returncode == 0, proc.stdout
    assert SERVED in proc.stdout


def test_an_uncaught_error_prints_plains_traceback(project: Path) -> None:
    """An error raised out of pytest's main (here: stdout closed) prints the traceback a plain interpreter
    prints: no frame of the fork server's."""
    start(project)
    errs = []
    for args in (("-p", "no:fastcollect"), ()):
        proc = subprocess.run(pytest_argv(*args), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=120, preexec_fn=lambda: os.close(1))
        errs.append(re.sub(r"line \d+", "line N", proc.stderr.split("Traceback (most recent call last):")[-1]))
    assert errs[0] == errs[1]
    assert "pytest_fastcollect" not in errs[1]


# ---- global random generators ---------------------------------------------------------------------------


def _draws(root: Path, out: Path, *args: str) -> list[str]:
    values = []
    for _ in range(2):
        proc = run(root, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        values.append(out.read_text())
    return values


@pytest.mark.parametrize("library", ["random", "numpy"])
@pytest.mark.parametrize("seeded", [True, False], ids=["seeded-at-import", "unseeded"])
def test_global_random_generators_draw_as_in_a_plain_run(project: Path, tmp_path: Path, library: str,
                                                        seeded: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conftest that seeds the global generator at import: every plain run draws the same numbers, and so
    must every served run (CPython reseeds `random` after a fork). Unseeded: plain runs draw other numbers
    each time, and so must served runs (numpy reseeds nothing after a fork)."""
    if library == "numpy":
        pytest.importorskip("numpy")
    out = tmp_path / "draw.txt"
    monkeypatch.setenv("DRAW_OUT", str(out))
    module = "import numpy.random as rng\n" if library == "numpy" else "import random as rng\n"
    draw = "rng.rand()" if library == "numpy" else "rng.random()"
    write(project, {
        "tests/conftest.py": module + ("rng.seed(1234)\n" if seeded else ""),
        "tests/test_draw.py": f"import os\n{module}\ndef test_draw():\n    open(os.environ['DRAW_OUT'], 'w').write(repr({draw}))\n",
    })
    age(project)
    plain = _draws(project, out, "-p", "no:fastcollect")
    start(project)
    served = _draws(project, out, "-v")
    assert SERVED in run(project, "-v").stdout
    if seeded:
        assert plain[0] == plain[1] == served[0] == served[1]
    else:
        assert plain[0] != plain[1] and served[0] != served[1], (plain, served)
