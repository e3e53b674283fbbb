"""Helpers for the end-to-end daemon tests: real `python -m pytest` processes in a project folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SERVED = "run by the warm daemon"


def pytest_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


def run(cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pytest_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def age(root: Path, seconds: float = 5.0) -> None:
    """Make every file look written `seconds` ago (a file written just before a warm-up is re-checked)."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        os.utime(path, (past, past))


def start(root: Path, *args: str) -> int:
    """`--daemon-start ARGS`; returns the daemon's pid. A daemon serves runs with the same initial paths
    (positional arguments, `::` parts aside), so ARGS name the paths of the runs to come."""
    proc = run(root, *args, "--daemon-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"^\s+pid\s+(\d+)$", proc.stdout, re.M)
    assert match, proc.stdout
    return int(match.group(1))


def status(root: Path) -> subprocess.CompletedProcess[str]:
    return run(root, "--daemon-status")


def wait_ready(root: Path, timeout: float = 60) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        proc = status(root)
        if proc.returncode == 0 and re.search(r"template\s+ready", proc.stdout):
            return proc.stdout
        time.sleep(0.2)
    raise AssertionError(f"daemon not ready: {status(root).stdout}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def daemon_processes(runtime: Path) -> list[int]:
    out = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().split(b"\0")
            environ = (pid_dir / "environ").read_bytes()
        except OSError:
            continue
        if b"pytest_fastcollect.daemon" in cmd and b"serve" in cmd and str(runtime).encode() in environ:
            if alive(int(pid_dir.name)):
                out.append(int(pid_dir.name))
    return out
