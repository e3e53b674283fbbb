from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

from _corpus import CORPUS


@pytest.fixture
def corpus_copy(tmp_path: Path):
    """Copy a corpus case into tmp_path (so runs never write into the source tree) and return its path."""

    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(CORPUS / name, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        return dest

    return make


@pytest.fixture(autouse=True)
def _no_auto_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest processes started by tests never use or start a warm daemon unless the test asks for one
    (the `daemon_env` fixture): CI set turns the default off, as documented. When this suite itself runs
    under xdist (`-n 2`), the pytest processes it starts must not believe they are xdist workers."""
    monkeypatch.setenv("CI", "1")
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def daemon_env(monkeypatch: pytest.MonkeyPatch):
    """An environment in which pytest processes use and auto-start the warm daemon, with their own short
    socket folder; every daemon started there is stopped (SIGTERM, then SIGKILL) when the test ends.
    Yields the socket folder's parent (the XDG_RUNTIME_DIR)."""
    import os
    import signal
    import tempfile
    import time

    runtime = tempfile.mkdtemp(prefix="fcd")  # short: socket paths are limited to 107 bytes
    os.chmod(runtime, 0o700)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield Path(runtime)
    folder = Path(runtime) / "pytest-fastcollect"
    pids = []
    for pid_file in folder.glob("*.pid"):
        try:
            pids.append(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(runtime, ignore_errors=True)
