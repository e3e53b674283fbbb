"""The early hand-off (src/pytest_fastcollect/early.py, daemon/hold.py): a run the daemon served before is
handed to it by the `.pth` hook before pytest is imported, decided by the run child's own configuration, and
anything doubtful is a normal start that prints exactly what it would have printed without the hook.

The end-to-end tests need the wheel's `pytest_fastcollect_early.pth` in site-packages (scripts/test.sh
installs the wheel); they are skipped without it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from pytest_fastcollect import early
from pytest_fastcollect.keyfacts import interpreter_facts

from _daemonutil import SERVED, age, pytest_argv, run, start, status, write

EARLY = "handed off before pytest was imported"
PTH = Path(sysconfig.get_paths()["purelib"]) / "pytest_fastcollect_early.pth"
needs_pth = pytest.mark.skipif(not PTH.exists(), reason="the wheel's .pth hook is not installed in this venv")

PROJECT = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "tests/conftest.py": "import pytest\n\n@pytest.fixture\ndef one():\n    return 1\n",
    "tests/test_a.py": """
        def test_one(one):
            assert one == 1

        def test_fails():
            assert 1 == 2
    """,
}


# ---- units ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["py", "-m", "pytest", "-q"], {"spec": "pytest.__main__", "file": None}),
        (["py", "-X", "dev", "-W", "error", "-m", "pytest"], {"spec": "pytest.__main__", "file": None}),
        (["py", "-mpytest"], {"spec": "pytest.__main__", "file": None}),
        (["py", "/venv/bin/pytest", "-q"], {"spec": None, "file": "/venv/bin/pytest"}),
        (["py", "-u", "/venv/bin/py.test"], {"spec": None, "file": "/venv/bin/py.test"}),
        (["py", "-m", "pytest_fastcollect.daemon", "serve"], None),
        (["py", "-c", "import pytest; pytest.main()"], None),
        (["py", "-cimport pytest"], None),
        (["py", "script_about_pytest.py"], None),
        (["py", "-"], None),
        (["py"], None),
        (["py", "-m"], None),
    ],
)
def test_invocation(argv: list[str], expected: dict | None) -> None:
    """Only the `pytest`/`py.test` scripts and `python -m pytest` are pytest invocations."""
    assert early.invocation(argv) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, True), ({"PYTEST_FASTCOLLECT_EARLY": "0"}, False), ({"PYTEST_FASTCOLLECT_EARLY": "off"}, False),
     ({"PYTEST_FASTCOLLECT_EARLY": "1"}, True), ({"CI": "true"}, False), ({"PYTEST_XDIST_WORKER": "gw0"}, False)],
)
def test_allowed(env: dict[str, str], expected: bool) -> None:
    assert early.allowed(env) is expected


def test_index_name_ignores_volatile_variables_only() -> None:
    argv, cwd = ["py", "-m", "pytest"], "/p"
    base = early.index_name(argv, cwd, {"A": "1"})
    assert early.index_name(argv, cwd, {"A": "1", "PS1": "$ ", "COLUMNS": "80"}) == base
    assert early.index_name(argv, cwd, {"A": "2"}) != base
    assert early.index_name(argv, "/q", {"A": "1"}) != base
    assert early.index_name([*argv, "-x"], cwd, {"A": "1"}) != base
    assert re.fullmatch(r"[0-9a-f]{32}", base)


def test_remember_lookup_forget(tmp_path: Path) -> None:
    """An entry written by the in-process client is what the early client finds; forget removes it."""
    folder = str(tmp_path)
    assert early.lookup(folder) is None
    early.remember(folder, "abc123", True)
    assert early.lookup(folder) == {"key": "abc123", "servable": True}
    assert oct(os.stat(os.path.dirname(early.index_path(folder, sys.orig_argv, os.getcwd(), os.environ))).st_mode)[-3:] == "700"
    early.remember(folder, "abc123", False)
    assert early.lookup(folder) == {"key": "abc123", "servable": False}
    early.forget(folder)
    assert early.lookup(folder) is None


def test_lookup_rejects_a_bad_entry(tmp_path: Path) -> None:
    path = Path(early.index_path(str(tmp_path), sys.orig_argv, os.getcwd(), os.environ))
    path.parent.mkdir()
    for text in ("{", "[]", '{"key": 3}', '{"key": "../x"}'):
        path.write_text(text)
        assert early.lookup(str(tmp_path)) is None, text


def test_socket_folder_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert early.socket_folder() is None  # missing
    (tmp_path / "pytest-fastcollect").mkdir(mode=0o755)
    os.chmod(tmp_path / "pytest-fastcollect", 0o755)
    assert early.socket_folder() is None  # open to others
    os.chmod(tmp_path / "pytest-fastcollect", 0o700)
    assert early.socket_folder() == str(tmp_path / "pytest-fastcollect")


GUARD = r"""
import os, socket, sys
from pytest_fastcollect.daemon import protocol
from pytest_fastcollect.daemon.hold import EarlyHold
ours, theirs = socket.socketpair()
hold = EarlyHold(theirs, "k", "d", {}, "/nonexistent")
pid = os.fork()
if pid == 0:
    ours.close()
    hold.divert()
    print("must not be seen")
    import pytest
    pytest.main(["-p", "no:fastcollect", "-q", sys.argv[1]])
    os._exit(5)  # never reached: the guard refused before the initial conftests
theirs.close()
reply, _ = protocol.recv(ours, deadline=None)
_, status = os.waitpid(pid, 0)
print(reply["type"], reply["reason"], os.waitstatus_to_exitcode(status))
"""


def test_guard_refuses_a_run_whose_plugin_never_decides(tmp_path: Path) -> None:
    """An early run child whose plugin is not active (here `-p no:fastcollect`) is refused by the guard in
    front of pytest's conftest hook, before any conftest is imported, and writes nothing to the terminal."""
    write(tmp_path, {"conftest.py": "open('imported', 'w').close()\n", "test_x.py": "def test_x():\n    pass\n"})
    proc = subprocess.run([sys.executable, "-c", GUARD, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.stdout.strip() == "refused early hand-off: the plugin did not decide the run (not active in it) 0", proc
    assert proc.stderr == ""
    assert not (tmp_path / "imported").exists()


# ---- end to end ----------------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path, daemon_env: Path) -> Path:
    root = tmp_path / "proj"
    write(root, PROJECT)
    age(root)
    return root


def served_runs(root: Path) -> int:
    match = re.search(r"served\s+(\d+)", status(root).stdout)
    return int(match.group(1)) if match else -1


def _summary(text: str) -> str:
    return re.sub(r"in [0-9.]+s", "in Ns", text)


@needs_pth
def test_second_identical_run_is_handed_off_early(project: Path) -> None:
    """The first run through the daemon writes the index entry; the same command again is handed off
    before pytest is imported, with the same output and exit code as a plain run."""
    start(project)
    first = run(project, "-v")
    assert SERVED in first.stdout and EARLY not in first.stdout, first.stdout
    second = run(project, "-v")
    assert EARLY in second.stdout, second.stdout + second.stderr
    plain = run(project, "-v", "-p", "no:fastcollect")
    assert second.returncode == plain.returncode == 1
    ours = [line for line in second.stdout.splitlines() if not line.startswith("fastcollect")]
    theirs = [line for line in plain.stdout.splitlines()]
    drop = re.compile(r"^(plugins:|rootdir:|configfile:|cachedir:)")
    assert [_summary(x) for x in ours if not drop.match(x)] == [_summary(x) for x in theirs if not drop.match(x)]
    assert second.stderr == plain.stderr


@needs_pth
def test_script_entry_point_is_handed_off_too(project: Path) -> None:
    start(project)
    script = [str(Path(sys.executable).parent / "pytest"), "-v"]
    if not Path(script[0]).exists():
        pytest.skip("no pytest script next to the interpreter")
    subprocess.run(script, cwd=project, capture_output=True, text=True, timeout=120)
    proc = subprocess.run(script, cwd=project, capture_output=True, text=True, timeout=120)
    assert EARLY in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 1


@needs_pth
@pytest.mark.parametrize("switch", ["env", "ini"])
def test_switched_off(project: Path, switch: str) -> None:
    """PYTEST_FASTCOLLECT_EARLY=0 and ini fastcollect_early_handoff = false: served as before, never early
    (with the ini switch, the in-process client removes the entry)."""
    env = None
    if switch == "env":
        env = {**os.environ, "PYTEST_FASTCOLLECT_EARLY": "0"}
    else:
        (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\nfastcollect_early_handoff = false\n")
        age(project)
    start(project)  # (the switch is not part of the daemon's key: keyfacts.VOLATILE_ENV)
    for _ in range(3):
        proc = run(project, "-v", env=env)
        assert SERVED in proc.stdout and EARLY not in proc.stdout, proc.stdout


@needs_pth
def test_entry_for_a_dead_daemon_is_a_normal_run(project: Path, daemon_env: Path) -> None:
    """An index entry whose daemon is gone (killed between the lookup and the connect): a normal start."""
    folder = daemon_env / "pytest-fastcollect"
    folder.mkdir(mode=0o700, exist_ok=True)
    argv = pytest_argv("-q")
    env = dict(os.environ)
    path = Path(early.index_path(str(folder), argv, str(project), env))
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps({"key": "0123456789abcdef0123", "servable": True}))
    proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert "1 failed, 1 passed" in proc.stdout and proc.stderr == ""


@needs_pth
@pytest.mark.parametrize("args", [("--version",), ("--help",), ("--daemon-status",)])
def test_informational_runs_are_never_handed_off(project: Path, args: tuple[str, ...]) -> None:
    """--version, --help and the --daemon-* commands never reach the daemon early, even with an entry."""
    start(project)
    before = served_runs(project)
    for _ in range(2):
        proc = run(project, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert served_runs(project) == before


@needs_pth
def test_added_test_file_is_refused_early_and_served_right(project: Path) -> None:
    """A test file added since the warm-up: the run child refuses the early hand-off (its walk finds other
    files), and the normal start gives the plain result."""
    start(project)
    run(project, "-q")
    run(project, "-q")
    (project / "tests" / "test_new.py").write_text("def test_new():\n    pass\n")
    age(project)
    proc = run(project, "-q")
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout + proc.stderr


@needs_pth
def test_interpreter_flags_are_part_of_the_decision(project: Path) -> None:
    """A run with other interpreter flags (-X dev) than the daemon's key had is not served by that daemon:
    the key the child computes from the client's facts differs."""
    start(project)
    run(project, "-v")
    run(project, "-v")
    argv = [sys.executable, "-X", "dev", "-m", "pytest", "-v"]
    proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120)
    assert EARLY not in proc.stdout
    assert proc.returncode == 1


def test_interpreter_facts_are_json_stable() -> None:
    """The facts travel as JSON: the key computed from the received facts equals the local one."""
    from pytest_fastcollect.daemon.paths import key_of

    facts = interpreter_facts()
    assert key_of(json.loads(json.dumps(facts))) == key_of(facts)


PTH_COST = textwrap.dedent("""
    import sys
    print(sorted(m for m in sys.modules if m.startswith("py" + "test_fastcollect")))
""")  # the program's text must not name the package: any argument with "pytest" in it makes the hook look


@needs_pth
def test_pth_imports_nothing_for_other_programs() -> None:
    """`python -c ...` that is not pytest: the .pth line imports nothing of this package."""
    proc = subprocess.run([sys.executable, "-c", PTH_COST], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    # an interpreter whose own path says pytest (a venv in ~/.cache/pytest-suites) is not a pytest run
    proc = subprocess.run(["/opt/pytest-suites/venv/bin/python", "-c", PTH_COST], executable=sys.executable,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@needs_pth
def test_pth_referee_run_imports_only_the_hook(tmp_path: Path) -> None:
    """`pytest -p no:fastcollect`, the referee: the hook module only, no daemon code."""
    write(tmp_path, {"test_m.py": "import sys\n\ndef test_m():\n    print(sorted(m for m in sys.modules "
                                  "if m.startswith('pytest_fastcollect')))\n"})
    proc = subprocess.run(pytest_argv("-p", "no:fastcollect", "-s", "-q", "-p", "no:cacheprovider"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert "['pytest_fastcollect', 'pytest_fastcollect.early']" in proc.stdout, proc.stdout


def test_runclock_describe() -> None:
    """The status line: the whole time from the client's start and each phase in ms."""
    from pytest_fastcollect.daemon import runclock

    marks = {"started": 100.0, "sent": 100.03, "forked": 100.034, "main": 100.044, "configured": 100.07,
             "collected": 100.08, "tests": 100.09, "end": 100.1}
    line = runclock.describe({"early": True, "level": 1, "argv": "-q", "marks": marks})
    assert line.startswith("0.100s (early hand-off, level 1): client start-up 30, hand-off 4, set-up 10, ")
    assert line.endswith("tests 10, report 10 ms; -q")
    assert runclock.describe(None) == "-"


@needs_pth
def test_status_shows_where_the_last_run_went(project: Path) -> None:
    """--daemon-status: the last served run's wall time by phase, and how it was handed off."""
    start(project)
    run(project, "-q")
    run(project, "-q")
    text = status(project).stdout
    match = re.search(r"last run\s+([0-9.]+)s \(early hand-off, level 1\): client start-up \d+, hand-off \d+, "
                      r"set-up \d+, configure \d+, collection \d+, tests \d+, report \d+ ms; -q", text)
    assert match, text
    assert 0 < float(match.group(1)) < 60


def _pty_output(argv: list[str], cwd: Path, columns: int = 100) -> tuple[int, bytes]:
    """(exit code, every byte written) of `argv` on a pseudo-terminal of `columns` x 30."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "PY_COLORS")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the slave
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks)


@needs_pth
def test_terminal_bytes_equal_plain_but_durations(project: Path) -> None:
    """On a terminal, with colour: the bytes of an early-served run are the plain run's but for the
    durations, the plugin's own header lines ("fastcollect...": the documented differences) and its name in
    pytest's "plugins:" line; against the plugin's local run (no daemon), the same less the last."""
    start(project)
    argv = pytest_argv("-p", "no:cacheprovider")
    for _ in range(2):
        _pty_output(argv, project)
    code, ours = _pty_output(argv, project)
    plain_code, plain = _pty_output([*argv, "-p", "no:fastcollect"], project)
    assert code == plain_code == 1
    assert b"\x1b[" in plain, plain  # coloured

    local_code, local = _pty_output([*argv, "--no-fastcollect-auto-daemon"], project)
    assert local_code == 1

    def norm(raw: bytes) -> bytes:
        raw = re.sub(rb"^fastcollect[^\r\n]*\r\n", b"", raw, flags=re.M)
        return re.sub(rb"in \d+\.\d+s", b"in N.NNs", raw)

    assert norm(ours) == norm(local)
    assert norm(ours).replace(b"fastcollect-0.1.0, ", b"") == norm(plain)
    # and it was early: the status's last run says so
    assert "early hand-off" in status(project).stdout
