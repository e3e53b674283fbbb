"""pytest-xdist: the controller writes the discovery cache before workers start; workers read it read-only;
`-n 8` many times over, with and without the warm daemon, with no SQLite error, no "Different tests were
collected", and no process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("xdist")

REPORTER = """
import json, os
import pytest

def pytest_collection_finish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    plugin = session.config.pluginmanager.get_plugin("fastcollect")
    state = session.config.stash[plugin.STATE]
    state.finish()
    stats = state.report.cache if state.report is not None else None
    out = {
        "location": state.location.path if state.location else None,
        "read_only": state.location.read_only if state.location else None,
        "files": len(state.report.files) if state.report is not None else None,
        "parsed": stats.parsed if stats else None,
        "wrote": stats.wrote if stats else None,
        "failure": state.failure,
    }
    with open(os.path.join(os.environ["FC_REPORT_DIR"], worker + ".json"), "w") as fh:
        json.dump(out, fh)
"""


def make_project(root: Path, files: int = 24) -> None:
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    for i in range(files):
        (root / "tests" / f"test_m{i:02d}.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('x', range(3))\ndef test_a{i}(x):\n    assert x < 3\n\n"
            f"class TestC{i}:\n    def test_b(self):\n        pass\n"
        )


def test_workers_read_the_controllers_cache(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_project(root, files=6)
    (root / "tests" / "conftest.py").write_text(REPORTER)
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {**os.environ, "FC_REPORT_DIR": str(reports)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = root / ".pytest_cache" / "d" / "fastcollect" / "discovery-v1.sqlite"
    assert db.exists()  # written by the controller
    found = {p.stem: json.loads(p.read_text()) for p in reports.glob("*.json")}
    assert set(found) == {"gw0", "gw1"}
    for worker, info in found.items():
        assert info["location"] == str(db), (worker, info)
        assert info["read_only"] is True and info["wrote"] is False, (worker, info)
        assert info["parsed"] == 0 and info["files"] == 6, (worker, info)  # every row from the controller
        assert info["failure"] is None


BAD = ("sqlite", "database is locked", "readonly database", "Different tests were collected", "INTERNALERROR")


def _python_processes_in(root: Path) -> list[int]:
    out = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            if os.readlink(pid_dir / "cwd") == str(root):
                out.append(int(pid_dir.name))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("daemon", [False, True], ids=["cache", "daemon"])
def test_n8_twenty_times(tmp_path: Path, daemon: bool, request: pytest.FixtureRequest) -> None:
    root = tmp_path / "proj"
    make_project(root)
    env = dict(os.environ)
    if daemon:
        runtime = request.getfixturevalue("daemon_env")
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        env.pop("CI", None)
        started = subprocess.run([sys.executable, "-m", "pytest", "--daemon-start"], cwd=root, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stdout
    served = 0
    for i in range(20):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "8", "-p", "no:randomly"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, (i, text[-3000:])
        assert "96 passed" in proc.stdout, (i, text[-3000:])
        for bad in BAD:
            assert bad not in text, (i, bad, text[-3000:])
        served += "run by the warm daemon" in proc.stdout
    if daemon:
        assert served == 20
        # every run and each of its 8 workers were forked from the template (warm workers)
        status = subprocess.run([sys.executable, "-m", "pytest", "--daemon-status"], cwd=root, env=env,
                                capture_output=True, text=True, timeout=60).stdout
        assert "180 served" in status, status
        stop = subprocess.run([sys.executable, "-m", "pytest", "--daemon-stop"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stdout
    end = time.monotonic() + 15
    while _python_processes_in(root):
        assert time.monotonic() < end, f"left behind: {_python_processes_in(root)}"
        time.sleep(0.2)


FAILING = {
    "tests/test_fail.py": "def test_fails():\n    assert 0\n\ndef test_fails_too():\n    assert 0\n",
}


@pytest.mark.parametrize("daemon", [False, True], ids=["cache", "warm-workers"])
@pytest.mark.parametrize(
    "args",
    [
        ["-n", "auto"],
        ["-n", "8"],
        ["-n", "2", "--dist", "loadscope"],
        ["-n", "2", "--dist", "loadfile"],
        ["-n", "2", "--dist", "worksteal"],
        ["-n", "2", "-k", "test_a1 or TestC2"],
    ],
    ids=lambda a: " ".join(a),
)
def test_distribution_modes_match_plain_xdist(tmp_path: Path, args: list[str], daemon: bool,
                                             request: pytest.FixtureRequest) -> None:
    """The referee at 0 differences (node IDs and outcomes as sets, exit code) for every --dist mode and
    worker count, with the cache and with warm workers forked from the daemon."""
    from pytest_fastcollect.parity.referee import format_report, referee

    if daemon:
        request.getfixturevalue("daemon_env")
    root = tmp_path / "proj"
    make_project(root, files=6)
    cmp = referee(root, ["-p", "no:randomly", *args], run=True, timeout=300, daemon=daemon)
    assert cmp.ok, format_report(cmp)


def _failed(text: str) -> set[str]:
    return {line.split()[1] for line in text.splitlines() if line.startswith("FAILED ")}


@pytest.mark.parametrize("daemon", [False, True], ids=["cache", "warm-workers"])
@pytest.mark.parametrize("stop", [["-x"], ["--maxfail", "1"], ["--maxfail", "2"]], ids=" ".join)
def test_stopping_early_matches_plain_xdist(tmp_path: Path, stop: list[str], daemon: bool,
                                            request: pytest.FixtureRequest) -> None:
    """-x and --maxfail under `-n 2`: which passing tests ran before the stop varies from run to run even in
    plain xdist, so the exit code and the failed node IDs are compared (2 failing tests, one per maxfail)."""
    env = dict(os.environ)
    if daemon:
        env = {**env, "XDG_RUNTIME_DIR": str(request.getfixturevalue("daemon_env"))}
        env.pop("CI", None)
    root = tmp_path / "proj"
    make_project(root, files=6)
    (root / "tests" / "test_fail.py").write_text(FAILING["tests/test_fail.py"])
    # --dist loadfile: both failing tests go to one worker, in file order (a deterministic set to compare)
    args = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-p", "no:randomly", "-rf", *stop]
    if daemon:
        started = subprocess.run([*args[:3], "--daemon-start"], cwd=root, env=env, capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 0, started.stdout
    plain = subprocess.run([*args, "-p", "no:fastcollect"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=300)
    ours = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    # xdist reports a stop after maxfail failures as "Interrupted" (exit code 2) in plain pytest too
    assert ours.returncode == plain.returncode and plain.returncode in (1, 2), (plain.stdout[-2000:], ours.stdout[-2000:])
    assert _failed(ours.stdout) == _failed(plain.stdout) and _failed(plain.stdout), (plain.stdout, ours.stdout)
    if daemon:
        assert "run by the warm daemon" in ours.stdout, ours.stdout


# ---- workers elsewhere: execnet socket gateways and popen//chdir ------------------------------------------

REMOTE_PROJECT = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    **{f"tests/test_m{i}.py": f"import pytest\n\n@pytest.mark.parametrize('x', range(4))\ndef test_v{i}(x):\n    assert x < 4\n"
       for i in range(1, 4)},
}


@pytest.fixture
def socket_worker_host(tmp_path: Path):
    """A copy of REMOTE_PROJECT in another folder, served by execnet's socketserver on a free loopback port
    (what a remote host runs: `python socketserver.py HOST:PORT`). Yields (project, copy, port)."""
    import execnet
    import shutil
    import socket

    project = tmp_path / "project"
    for name, text in REMOTE_PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    copy = tmp_path / "elsewhere"
    shutil.copytree(project, copy)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_script = Path(execnet.__file__).parent / "script" / "socketserver.py"
    server = subprocess.Popen([sys.executable, str(server_script), f"127.0.0.1:{port}"], cwd=copy,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < end and server.poll() is None, "socketserver did not start"
            time.sleep(0.1)
    yield project, copy, port
    server.kill()
    server.wait()


@pytest.mark.parametrize("where", ["socket", "popen-chdir"])
def test_workers_elsewhere_collect_what_plain_xdist_collects(socket_worker_host, where: str) -> None:
    """A worker in another folder (an execnet socket gateway, as on another host, or `popen//chdir=`) cannot
    use the controller's cache paths or its -k/-m decision: it gets an empty hand-off and collects
    everything itself; the local worker still leaves files unimported and records; every worker collects the
    same node IDs, and the referee (twice per side) finds 0 differences."""
    from pytest_fastcollect.parity.repeat import format_verdict, repeat_referee
    from pytest_fastcollect.parity.referee import prepare

    project, copy, port = socket_worker_host
    remote = f"socket=127.0.0.1:{port}//chdir={copy}" if where == "socket" else f"popen//chdir={copy}"
    tx = ["--tx", remote, "--tx", "popen", "--dist", "load", "-p", "no:cacheprovider"]
    selection = ["-k", "v1 or v2"]
    first = subprocess.run([sys.executable, "-m", "pytest", *tx, *selection, "-v"], cwd=project,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "8 passed" in first.stdout, first.stdout + first.stderr
    second = subprocess.run([sys.executable, "-m", "pytest", *tx, *selection, "-v"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert "1 test files left unimported" in second.stdout, second.stdout
    assert "8 passed" in second.stdout
    args = [*tx, *selection]
    extra, env, record_path = prepare(project, args, [], None, 120, prime=[*tx])
    verdict = repeat_referee(project, args, 2, extra, env, 120, record_path=record_path, ordered=False)
    assert verdict.ok, format_verdict(verdict)
