"""Watch mode (`pytest --daemon-watch`, watch/): the change rules, the run commands, the loop driven by fakes,
and end to end in a pseudo-terminal and through a pipe."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import sysconfig
import termios
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from _daemonutil import SERVED, start, write
from pytest_fastcollect.watch.changes import Change, ProjectScan, affected, ignored, import_names
from pytest_fastcollect.watch.loop import Command, Watch, interpreter_prefix
from pytest_fastcollect.watch.terminal import Keys

pytest.importorskip("watchfiles")


# ---- what a change means ------------------------------------------------------------------------------
@pytest.mark.parametrize("rel", [
    ".git/index", "pkg/__pycache__/m.cpython-311.pyc", "tests/.test_a.py.swp", "tests/4913", "tests/test_a.py~",
    "tests/.#test_a.py", "pytest-cache-files-x1y2/CACHEDIR.TAG", "pytest-cache-files-x1y2", ".pytest_cache", ".pytest_cache/v/cache/lastfailed",
    ".coverage", ".coverage.host.123", "pkg.egg-info/PKG-INFO", ".tox/py311/log", "custom-cache/v/x",
])
def test_ignored(tmp_path: Path, rel: str) -> None:
    assert ignored(str(tmp_path / rel), [str(tmp_path / "custom-cache")])


def test_ignored_inside_a_virtual_environment(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    assert ignored(str(tmp_path / "env" / "lib" / "site.py"))
    assert not ignored(str(tmp_path / "tests" / "test_a.py"))
    assert not ignored(str(tmp_path / "data" / "expected.json"))


def test_import_names() -> None:
    class Info:
        def __init__(self, module: str, names: list[str]) -> None:
            self.module, self.names = module, names

    got = import_names([Info("a.b", ["c"]), Info("", ["test_x"])])
    assert {"a", "a.b", "b", "c", "a.b.c", "test_x"} <= got


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "conftest.py": "",
        "tests/test_a.py": "def test_a(): pass\n",
        "tests/test_b.py": "def test_b(): pass\n",
        "tests/helper.py": "X = 1\n",
        "data.json": "{}\n",
    })
    return tmp_path


def _plan(root: Path, changes: list[tuple[str, str]], selection: list[str] | None = None) -> Any:
    files = sorted(str(p) for p in root.rglob("*.py"))
    if selection is None:
        selection = [str(root / "tests" / n) for n in ("test_a.py", "test_b.py")]
    return affected([Change(kind, str(root / rel)) for kind, rel in changes], selection, ProjectScan(str(root), files))


def test_affected_a_test_file_nothing_names(project: Path) -> None:
    plan = _plan(project, [("modified", "tests/test_b.py")])
    assert plan.files == [str(project / "tests" / "test_b.py")]
    assert "1 test file reaches tests/test_b.py" in plan.reason


def test_affected_two_test_files_in_the_selection_order(project: Path) -> None:
    plan = _plan(project, [("modified", "tests/test_b.py"), ("modified", "tests/test_a.py")])
    assert plan.files == [str(project / "tests" / "test_a.py"), str(project / "tests" / "test_b.py")]


def test_affected_a_new_test_file(project: Path) -> None:
    (project / "tests" / "test_c.py").write_text("def test_c(): pass\n")
    selection = [str(project / "tests" / n) for n in ("test_a.py", "test_b.py", "test_c.py")]
    plan = _plan(project, [("added", "tests/test_c.py")], selection)
    assert plan.files == [str(project / "tests" / "test_c.py")]


@pytest.mark.parametrize("importer", [
    "from test_b import test_b as again\n",                            # a static import: reaches it
    "from tests import test_b\n",                                      # a from-import of the module
    "import importlib\nm = importlib.import_module('tests.test_b')\n",  # its name in a string
    "m = __import__(\"test_b\")\n",
    "import runpy\nrunpy.run_path('tests/test_b.py')\n",               # its path in a string
])
def test_affected_a_test_file_another_module_names(project: Path, importer: str) -> None:
    (project / "tests" / "test_a.py").write_text(importer + "def test_a(): pass\n")
    plan = _plan(project, [("modified", "tests/test_b.py")])
    assert plan.files == [str(project / "tests" / "test_a.py"), str(project / "tests" / "test_b.py")]


@pytest.mark.parametrize(("kind", "rel", "why"), [
    ("modified", "conftest.py", "configures pytest"),
    ("modified", "pytest.ini", "configures pytest"),
    ("added", "tests/conftest.py", "configures pytest"),
    ("modified", "data.json", "is not a Python file"),
    ("deleted", "tests/test_old.py", "was deleted"),
    ("deleted", "tests/helper.py", "was deleted"),
])
def test_affected_the_whole_selection(project: Path, kind: str, rel: str, why: str) -> None:
    plan = _plan(project, [(kind, rel), ("modified", "tests/test_a.py")])
    assert plan.files is None and why in plan.reason


def test_affected_a_helper_the_test_files_that_reach_it(project: Path) -> None:
    write(project, {
        "src/pkg/__init__.py": "from .core import X\n",
        "src/pkg/core.py": "X = 1\n",
        "tests/mid.py": "import helper\n",
        "tests/test_a.py": "import pkg\ndef test_a(): pass\n",
        "tests/test_b.py": "def test_b():\n    from mid import helper\n",  # inside a function: counts
    })
    assert _plan(project, [("modified", "src/pkg/core.py")]).files == [str(project / "tests" / "test_a.py")]
    plan = _plan(project, [("modified", "tests/helper.py")])
    assert plan.files == [str(project / "tests" / "test_b.py")] and "1 test file reaches tests/helper.py" in plan.reason
    both = _plan(project, [("modified", "tests/helper.py"), ("modified", "src/pkg/core.py")])
    assert both.files == [str(project / "tests" / n) for n in ("test_a.py", "test_b.py")]


def test_affected_a_helper_no_test_reaches(project: Path) -> None:
    plan = _plan(project, [("added", "tests/helper.py")])
    assert plan.files == [] and "no test file imports tests/helper.py" in plan.reason


def test_affected_a_new_module_a_failing_import_wanted(project: Path) -> None:
    """A test file whose import failed until the module was added reaches it by name."""
    (project / "tests" / "test_b.py").write_text("import newmod\ndef test_b(): pass\n")
    (project / "tests" / "newmod.py").write_text("")
    assert _plan(project, [("added", "tests/newmod.py")]).files == [str(project / "tests" / "test_b.py")]


@pytest.mark.parametrize(("files", "why"), [
    ({"conftest.py": "import helper\n"}, "conftest.py imports tests/helper.py"),
    ({"conftest.py": "pytest_plugins = ['helper']\n"}, "conftest.py imports tests/helper.py"),
    ({"tests/mid.py": "import helper\n", "conftest.py": "import importlib\nimportlib.import_module('mid')\n"},
     "conftest.py imports tests/helper.py"),
    ({"conftest.py": "def pytest_collect_file(file_path, parent): pass\n"}, "conftest.py collects Python files itself"),
])
def test_affected_a_helper_the_whole_selection(project: Path, files: dict[str, str], why: str) -> None:
    write(project, {"tests/test_b.py": "import helper\ndef test_b(): pass\n", **files})
    plan = _plan(project, [("modified", "tests/helper.py")])
    assert plan.files is None and why in plan.reason, plan.reason


def test_affected_a_module_imported_at_start_or_a_python_collector(project: Path) -> None:
    files = sorted(str(p) for p in project.rglob("*.py"))
    selection = [str(project / "tests" / n) for n in ("test_a.py", "test_b.py")]
    helper = [Change("modified", str(project / "tests" / "helper.py"))]
    started = ProjectScan(str(project), files, startup_files=[str(project / "tests" / "helper.py")])
    assert "was imported when pytest started" in affected(helper, selection, started).reason
    doctest = ProjectScan(str(project), files, collects_python="--doctest-modules")
    assert affected(helper, selection, doctest).files is None
    test_file = [Change("modified", str(project / "tests" / "test_b.py"))]
    assert affected(test_file, selection, doctest).files == [str(project / "tests" / "test_b.py")]


def test_project_scan_reads_a_file_again_only_when_it_changed(project: Path) -> None:
    files = sorted(str(p) for p in project.rglob("*.py"))
    scan = ProjectScan(str(project), files)
    test_a, helper = str(project / "tests" / "test_a.py"), str(project / "tests" / "helper.py")
    assert test_a not in scan.reach([helper])
    _save(project / "tests" / "test_a.py", "import helper\n")
    assert test_a not in scan.reach([helper])  # not refreshed yet
    scan.refresh(files)
    assert test_a in scan.reach([helper])


# ---- the run commands ---------------------------------------------------------------------------------
def _command(**kw: Any) -> Command:
    base = dict(prefix=["py", "-m", "pytest"], args=["-q", "tests"], positional=["tests"], rootdir="/p", cwd="/p")
    base.update(kw)
    return Command(**base)  # type: ignore[arg-type]


def test_command_whole_and_narrowed() -> None:
    cmd = _command()
    assert cmd.argv() == ["py", "-m", "pytest", "-q", "--ff", "tests"]
    assert cmd.argv(["/p/tests/test_a.py"]) == ["py", "-m", "pytest", "-q", "--ff", "--fastcollect-only=tests/test_a.py", "tests"]


def test_command_failed_order_and_cache() -> None:
    assert "--lf" in _command().argv(failed=True) and "--ff" not in _command().argv(failed=True)
    assert "--ff" not in _command(args=["--nf", "tests"]).argv()
    assert "--ff" not in _command(args=["--sw", "tests"]).argv()
    no_cache = _command(cache=False)
    assert not {"--ff", "--lf"} & set(no_cache.argv()) and not {"--ff", "--lf"} & set(no_cache.argv(failed=True))


def test_command_name_filter_is_anded_with_the_callers() -> None:
    assert _command().argv(name_filter="slow")[-3:] == ["-k", "slow", "tests"]
    assert _command(keyword="not db").argv(name_filter="slow")[-3:] == ["-k", "(not db) and (slow)", "tests"]


def test_interpreter_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "-m", "pytest", "-q", "tests"])
    monkeypatch.setattr(sys, "argv", ["/x/pytest/__main__.py", "-q", "tests"])
    assert interpreter_prefix() == [sys.executable, "-X", "dev", "-m", "pytest"]
    monkeypatch.setattr(sys, "orig_argv", ["python3", "/venv/bin/pytest"])
    monkeypatch.setattr(sys, "argv", ["/venv/bin/pytest"])
    assert interpreter_prefix() == [sys.executable, "/venv/bin/pytest"]


# ---- the loop, driven by fakes ------------------------------------------------------------------------
class FakeProc:
    def __init__(self, argv: list[str], steps: int, code: int) -> None:
        self.argv, self.steps, self.code, self.signals = argv, steps, code, []

    def poll(self) -> int | None:
        self.steps -= 1
        return None if self.steps >= 0 else self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.steps, self.code = 0, 2

    def wait(self) -> int:
        return self.code


class FakeKeys(Keys):
    def __init__(self, keys: list[str], lines: list[str] | None = None) -> None:
        self.fd, self._saved = 0, None
        self.keys, self.lines = list(keys), list(lines or [])

    def listen(self) -> None:
        pass

    def release(self) -> None:
        pass

    def read(self, timeout: float = 0.0) -> str | None:
        return self.keys.pop(0) if self.keys else None

    def prompt(self, text: str, out: Any) -> str:
        return self.lines.pop(0)


def _loop(project: Path, batches: list[list[tuple[int, str]]], keys: Keys, *, interrupt: bool = False,
          steps: int = 2, codes: list[int] | None = None) -> tuple[Watch, list[FakeProc], list[str]]:
    procs: list[FakeProc] = []
    lines: list[str] = []
    exit_codes = list(codes or [])

    def spawn(argv: list[str], cwd: str) -> FakeProc:
        procs.append(FakeProc(argv, steps, exit_codes.pop(0) if exit_codes else 0))
        return procs[-1]

    def watcher() -> Iterator[list[tuple[int, str]]]:
        yield from batches

    class Out:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    selection = [str(project / "tests" / n) for n in ("test_a.py", "test_b.py")]
    cmd = Command(["py", "-m", "pytest"], ["tests"], ["tests"], str(project), str(project))
    watch = Watch(cmd, lambda: selection, lambda: sorted(str(p) for p in project.rglob("*.py")), watcher,
                  interrupt=interrupt, keys=keys, out=Out(), spawn=spawn)  # type: ignore[arg-type]
    code = watch.main()
    lines.append(f"exit {code}")
    return watch, procs, lines


def test_loop_queues_a_change_during_a_run(project: Path) -> None:
    b = str(project / "tests" / "test_b.py")
    # the first run starts, a change arrives while it runs, then the run ends: one more run, only test_b
    watch, procs, lines = _loop(project, [[], [(2, b)], [], [], [], [], []], FakeKeys([]))
    assert len(procs) == 2
    assert "--fastcollect-only=tests/test_b.py" in procs[1].argv and not procs[0].signals
    assert any("changes during the run: one more run" in line for line in lines)


def test_loop_interrupts_a_run_on_change(project: Path) -> None:
    b = str(project / "tests" / "test_b.py")
    watch, procs, lines = _loop(project, [[], [(2, b)], [], [], [], []], FakeKeys([]), interrupt=True, steps=10)
    assert procs[0].signals == [signal.SIGINT]
    assert len(procs) == 2 and "--fastcollect-only=tests/test_b.py" in procs[1].argv
    assert any("stopping it" in line for line in lines)


def test_loop_ignores_editor_files_and_caches(project: Path) -> None:
    batches = [[], [(1, str(project / "tests" / ".test_b.py.swp")), (2, str(project / ".pytest_cache" / "x"))], [], []]
    watch, procs, lines = _loop(project, batches, FakeKeys([]))
    assert len(procs) == 1


def test_loop_keys(project: Path) -> None:
    batches: list[list[tuple[int, str]]] = [[] for _ in range(40)]
    keys = FakeKeys(["a", "f", "t", "p", "\n", "q"], lines=["slow", "test_b"])
    watch, procs, lines = _loop(project, batches, keys, steps=0, codes=[1, 1, 1, 1, 0, 3])
    argvs = [p.argv for p in procs]
    assert len(procs) == 6, lines
    assert "--lf" not in argvs[1] and "--lf" in argvs[2]
    assert argvs[3][-3:] == ["-k", "slow", "tests"]
    assert "--fastcollect-only=tests/test_b.py" in argvs[4] and argvs[4][-3:] == ["-k", "slow", "tests"]
    assert argvs[5] == argvs[4]  # Enter: the last run again
    assert lines[-1] == "exit 3"  # q: the last run's exit code


# ---- --fastcollect-only -------------------------------------------------------------------------------
def test_only_files_keeps_the_whole_runs_node_ids(tmp_path: Path) -> None:
    write(tmp_path, {
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
        "tests/test_a.py": "raise RuntimeError('test_a.py must not be imported')\n",
        "tests/sub/__init__.py": "",
        "tests/sub/conftest.py": "import pytest\n@pytest.fixture\ndef value(): return 3\n",
        "tests/sub/test_b.py": "def test_b(value): assert value == 3\n",
    })
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--fastcollect-only", "tests/sub/test_b.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    collected = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                                "--fastcollect-only=tests/sub/test_b.py"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
    assert collected.stdout.splitlines()[0] == "tests/sub/test_b.py::test_b"


# ---- end to end -----------------------------------------------------------------------------------------
class Terminal:
    """A process on a pseudo-terminal of its own (its controlling terminal: Ctrl-C is a key)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        master, slave = os.openpty()
        self.master = master

        def controlling() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = {**(os.environ if env is None else env), "PY_COLORS": "0"}  # plain text to match
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     preexec_fn=controlling, env=env)
        os.close(slave)
        self.buffer = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.buffer += data.decode("utf-8", "replace")

    def text(self) -> str:
        with self._lock:
            return self.buffer

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(re.findall(pattern, self.text())) >= count:
                return self.text()
            if self.proc.poll() is not None:
                time.sleep(0.3)
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} x{count} not seen; output:\n{self.text()}")

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


WAITING = r"fastcollect watch: exit \d+ in [\d.]+ s[^\n]*waiting for changes"


def _watch_project(root: Path) -> None:
    write(root, {
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
        "tests/helper.py": "X = 1\n",
        "tests/test_a.py": "import helper\ndef test_a(): assert helper.X == 1\n",
        "tests/test_b.py": "def test_b(): pass\ndef test_b2(): pass\n",
    })


def _save(path: Path, text: str) -> None:
    path.write_text(text)
    past = time.time() + 1  # a new mtime even on a coarse clock
    os.utime(path, (past, past))


def test_watch_in_a_terminal(tmp_path: Path) -> None:
    _watch_project(tmp_path)
    term = Terminal([sys.executable, "-m", "pytest", "--daemon-watch", "-q"], tmp_path)
    try:
        term.wait_for(WAITING)
        assert "running the whole selection (first run)" in term.text() and "3 passed" in term.text()
        assert "keys: a all, f failed" in term.text()
        # a test file: that file only
        _save(tmp_path / "tests" / "test_b.py", "def test_b(): pass\ndef test_b2(): assert 0\n")
        out = term.wait_for(WAITING, 2)
        assert "tests/test_b.py changed: running 1 test file" in out and "1 failed, 1 passed" in out
        assert "test_a" not in out.split("tests/test_b.py changed")[1]
        # two saves within the grouping window: one run
        _save(tmp_path / "tests" / "test_b.py", "def test_b(): pass\ndef test_b2(): assert 0\n# 1\n")
        _save(tmp_path / "tests" / "test_b.py", "def test_b(): pass\ndef test_b2(): assert 0\n# 2\n")
        term.wait_for(WAITING, 3)
        time.sleep(1.0)
        assert len(re.findall(WAITING, term.text())) == 3
        # a helper: the test files that import it
        _save(tmp_path / "tests" / "helper.py", "X = 2\n")
        out = term.wait_for(WAITING, 4)
        assert "tests/helper.py changed: running 1 test file (1 test file reaches tests/helper.py)" in out
        assert re.search(r"\n1 failed in ", out), out
        term.send("f")
        out = term.wait_for(WAITING, 5)
        assert "running the tests that failed last" in out and "2 failed in" in out
        term.send("t")
        term.wait_for("name filter")
        term.send("test_b\n")
        out = term.wait_for(WAITING, 6)
        assert "name filter 'test_b'" in out and "1 failed, 1 passed, 1 deselected" in out
        term.send("a")
        term.wait_for(WAITING, 7)
        # a conftest: the whole selection
        _save(tmp_path / "tests" / "conftest.py", "# a conftest\n")
        out = term.wait_for(WAITING, 8)
        assert "tests/conftest.py changed: running the whole selection (tests/conftest.py configures pytest" in out
        term.send("q")
        assert term.proc.wait(timeout=30) == 1
    finally:
        term.close()


def test_watch_ctrl_c_in_a_terminal_leaves_with_the_last_exit_code(tmp_path: Path) -> None:
    _watch_project(tmp_path)
    (tmp_path / "tests" / "test_b.py").write_text("def test_b(): assert 0\n")
    term = Terminal([sys.executable, "-m", "pytest", "--daemon-watch", "-q"], tmp_path)
    try:
        term.wait_for(WAITING)
        term.send("\x03")
        assert term.proc.wait(timeout=30) == 1
    finally:
        term.close()


def _piped(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest", "--daemon-watch", *args], cwd=root, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Lines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = "".join(self.lines)
            if len(re.findall(pattern, text)) >= count:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} x{count} not seen; output:\n{''.join(self.lines)}")


def _slow_project(root: Path) -> None:
    write(root, {
        "pytest.ini": "[pytest]\ntestpaths = tests\n",
        "tests/test_slow.py": "import time\ndef test_slow():\n    print('slow test running', flush=True)\n    time.sleep(3)\n",
        "tests/test_fast.py": "def test_fast(): pass\n",
    })


def test_watch_piped_queues_an_edit_made_during_a_run(tmp_path: Path) -> None:
    _slow_project(tmp_path)
    proc = _piped(tmp_path, "-q")
    out = Lines(proc)
    try:
        out.wait_for("running the whole selection")
        time.sleep(1.0)
        _save(tmp_path / "tests" / "test_fast.py", "def test_fast(): pass\n# edited\n")
        text = out.wait_for(WAITING, 2)
        assert "changes during the run: one more run" in text
        assert "tests/test_fast.py changed: running 1 test file" in text
        assert "keys:" not in text  # no terminal: keys off
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_watch_interrupt_stops_the_run(tmp_path: Path) -> None:
    _slow_project(tmp_path)
    proc = _piped(tmp_path, "-q", "-s", "--daemon-watch-interrupt", "-p", "no:cacheprovider")
    out = Lines(proc)
    try:
        out.wait_for("slow test running")  # (a SIGINT while pytest still starts is a traceback, not exit 2)
        _save(tmp_path / "tests" / "test_fast.py", "def test_fast(): pass\n# edited\n")
        text = out.wait_for(WAITING, 2)
        assert "a change during the run: stopping it" in text
        assert re.search(r"fastcollect watch: exit 2 in", text), text
        assert "tests/test_fast.py changed: running 1 test file" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_watch_runs_are_served_by_the_warm_daemon(tmp_path: Path, daemon_env: Path) -> None:
    _watch_project(tmp_path)
    start(tmp_path)
    proc = _piped(tmp_path, "-v")
    out = Lines(proc)
    try:
        out.wait_for(WAITING)
        _save(tmp_path / "tests" / "test_b.py", "def test_b(): pass\ndef test_b2(): assert 0\n")
        text = out.wait_for(WAITING, 2)
        second = text.split("tests/test_b.py changed")[1]
        assert SERVED in second, text
        if (Path(sysconfig.get_paths()["purelib"]) / "pytest_fastcollect_early.pth").exists():
            # the loop wrote the index entry of this run's command first: handed off before pytest starts
            assert "handed off before pytest was imported" in second, text
        assert "tests/test_b.py::test_b2 FAILED" in second and "test_a" not in second
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()


def test_watch_refuses_to_recurse_through_addopts(tmp_path: Path) -> None:
    _watch_project(tmp_path)
    env = {**os.environ, "PYTEST_ADDOPTS": "--daemon-watch"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--daemon-watch"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4 and "--daemon-watch in PYTEST_ADDOPTS" in proc.stderr


def test_ignored_counts_folders_below_the_watched_root_only(tmp_path: Path) -> None:
    """A project under ~/.cache, or --pyargs tests inside a venv's site-packages, is still watched."""
    root = tmp_path / ".cache" / "venv" / "lib" / "site-packages" / "pkg"
    (tmp_path / ".cache" / "venv").mkdir(parents=True)
    (tmp_path / ".cache" / "venv" / "pyvenv.cfg").write_text("")
    assert not ignored(str(root / "tests" / "test_a.py"), roots=[str(root)])
    assert ignored(str(root / "tests" / "__pycache__" / "x.py"), roots=[str(root)])
    assert ignored(str(root / "tests" / "test_a.py"))


def test_watched_folders_include_an_installed_package_under_test(tmp_path: Path) -> None:
    from pytest_fastcollect.watch.command import watched_folders

    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "pkg" / "sub" / "tests").mkdir(parents=True)
    for folder in (site / "pkg", site / "pkg" / "sub", site / "pkg" / "sub" / "tests"):
        (folder / "__init__.py").write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")
    (tmp_path / "tests").mkdir()
    root = str(tmp_path)
    assert watched_folders(root, [str(tmp_path / "tests")]) == [root]
    assert watched_folders(root, [str(site / "pkg" / "sub" / "tests")]) == [root, str(site / "pkg")]
    assert watched_folders("/elsewhere", [str(site / "pkg" / "sub")]) == ["/elsewhere", str(site / "pkg")]


@pytest.mark.parametrize(("text", "reaches"), [
    ("import_module('pkg.helper')", True), ('__all__ = ["helper"]', True), ("run('scripts/helper.py')", True),
    ('x = "helper"', True), ("doc = 'a helper function'", False), ("name = 'helpers'", False),
    ("name = 'my_helper'", False),
])
def test_a_name_spelled_in_a_string_reaches(project: Path, text: str, reaches: bool) -> None:
    (project / "tests" / "test_a.py").write_text(text + "\n")
    scan = ProjectScan(str(project), sorted(str(p) for p in project.rglob("*.py")))
    assert (str(project / "tests" / "test_a.py") in scan.reach([str(project / "tests" / "helper.py")])) is reaches


def test_watch_paths_map_data_files_to_test_files(project: Path) -> None:
    from pytest_fastcollect.watch.changes import WatchPath

    rules = [WatchPath.parse("data/*.json: tests/test_b.py"), WatchPath.parse("assets/*: tests/test_*.py")]
    files = sorted(str(p) for p in project.rglob("*.py"))
    selection = [str(project / "tests" / n) for n in ("test_a.py", "test_b.py")]
    scan = ProjectScan(str(project), files)

    def plan(*rels: str) -> Any:
        return affected([Change("modified", str(project / r)) for r in rels], selection, scan, rules)

    assert plan("data.json").files is None  # not under data/: no rule
    assert plan("data/x.json").files == [str(project / "tests" / "test_b.py")]
    assert "fastcollect_watch_paths maps data/x.json" in plan("data/x.json").reason
    assert plan("assets/deep/logo.svg").files == selection  # `*` crosses `/`
    assert plan("data/x.json", "tests/test_a.py").files == selection
    assert plan("data/x.json", "README.md").files is None
    with pytest.raises(ValueError):
        WatchPath.parse("data/*.json")
    with pytest.raises(ValueError):
        WatchPath.parse("data/*.json:   ")


def test_files_the_runs_write_are_not_changes(tmp_path: Path) -> None:
    from pytest_fastcollect.watch.command import output_paths

    args = ["--junitxml", "out/junit.xml", "--cov-report=xml:cov/c.xml", "--cov-report", "term", "--report-log=log.json", "-q"]
    assert output_paths(args, "/p") == ["/p/out/junit.xml", "/p/cov/c.xml", "/p/log.json"]
    assert ignored(str(tmp_path / "coverage.xml")) and ignored(str(tmp_path / "coverage.json"))
    assert ignored("/p/out/junit.xml", output_paths(args, "/p"))


def test_loop_runs_the_whole_selection_when_it_cannot_tell(project: Path) -> None:
    b = str(project / "tests" / "test_b.py")

    class Broken(ProjectScan):
        def refresh(self, files: list[str]) -> None:
            raise OSError("disk on fire")

    procs: list[FakeProc] = []
    selection = [str(project / "tests" / n) for n in ("test_a.py", "test_b.py")]
    cmd = Command(["py", "-m", "pytest"], ["tests"], ["tests"], str(project), str(project))
    watch = Watch(cmd, lambda: selection, lambda: [], lambda: iter([[], [(2, b)], [], [], []]),
                  keys=FakeKeys([]), out=open(os.devnull, "w"), project=Broken.__new__(Broken),
                  spawn=lambda argv, cwd: procs.append(FakeProc(argv, 0, 0)) or procs[-1])  # type: ignore[arg-type,func-returns-value]
    watch.main()
    assert len(procs) == 2 and not any(a.startswith("--fastcollect-only") for a in procs[1].argv)


def test_project_python_files_skip_a_venv_below_rootdir(tmp_path: Path) -> None:
    from pytest_fastcollect.paths import PathRules
    from pytest_fastcollect.watch.command import python_files, watched_folders

    site = tmp_path / "venv" / "lib" / "site-packages"
    write(tmp_path, {"venv/pyvenv.cfg": "", "venv/lib/site-packages/other/__init__.py": "",
                     "venv/lib/site-packages/pkg/__init__.py": "", "venv/lib/site-packages/pkg/tests/__init__.py": "",
                     "venv/lib/site-packages/pkg/tests/test_x.py": "", "local.py": ""})
    rules = PathRules([str(site / "pkg" / "tests")], ["test_*.py"], ["*.egg", ".*", "venv"])
    files = python_files(rules, watched_folders(str(tmp_path), rules.roots))
    assert str(tmp_path / "local.py") in files and str(site / "pkg" / "tests" / "test_x.py") in files
    assert not any("/other/" in f for f in files)


def test_help_with_the_watch_flag_is_help(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--daemon-watch", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--daemon-watch-interrupt" in proc.stdout and "fastcollect watch:" not in proc.stdout
