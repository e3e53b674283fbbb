"""The sides a benchmark row compares: plain pytest, the plugin's modes, and the competitors.

Every mode runs the same pytest command line (`python -m pytest OPTIONS SCENARIO-ARGS SELECTION`) with its own
interpreter, extra arguments and environment:

  plain          `-p no:fastcollect` in the suite's venv (the baseline of every ratio)
  cold-cache     the plugin in-process with `--fastcollect-cache-clear` on every run (discovery cache and -k/-m
                 records deleted first: what a first run, or a run after `git clean`, costs), in a cache of
                 its own (`-o cache_dir=TMP`, XDG_CACHE_HOME=TMP): the other modes keep theirs
  warm-cache     the plugin in-process (`--no-fastcollect-auto-daemon`), cache and records filled by the
                 unmeasured runs
  daemon         `--fastcollect-auto-daemon` against a daemon started for the row with `--daemon-start` and the
                 row's arguments, in the row's socket folder (XDG_RUNTIME_DIR, the same for every mode of the
                 row); every measured run must be served (checked with --daemon-status before and after)
  rust-0.5.2     the earlier Rust plugin, pytest-fastcollect 0.5.2 from PyPI, in a venv of its own beside the
                 suite's (same suite pins and pytest); it turns itself on when installed
  hot-reloading  pytest-hot-reloading 0.1.0a19 from PyPI in a venv of its own, `-p pytest_hot_reloading.plugin
                 --daemon-start-if-needed --daemon-port PORT` (its daemon is started by the first unmeasured
                 run and stopped with `--stop-daemon` after the row)

The competitors are run, never read: where one loses or adds tests, the counts beside its times show it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402

PLUGIN_MODES = ["plain", "cold-cache", "warm-cache", "daemon"]
COMPETITORS = {
    # exact pins of each competitor and of what pip resolved for it (pytest comes from the suite's pins)
    "rust-0.5.2": ["pytest-fastcollect==0.5.2"],
    "hot-reloading": ["pytest-hot-reloading==0.1.0a19", "jurigged==0.5.8", "cachetools==5.5.2", "codefind==0.1.7",
                      "ovld==0.3.9", "blessed==1.52.0", "jinxed==2.1.0", "watchdog==7.1.0", "wcwidth==0.9.4"],
}
MODES = [*PLUGIN_MODES, *COMPETITORS]
DESCRIPTIONS = {
    "plain": "pytest -p no:fastcollect",
    "cold-cache": "plugin in-process, its own cache and records deleted before each run (--fastcollect-cache-clear)",
    "warm-cache": "plugin in-process, cache and records kept (--no-fastcollect-auto-daemon)",
    "daemon": "plugin, run served by a warm daemon (--fastcollect-auto-daemon)",
    "rust-0.5.2": "pytest-fastcollect 0.5.2 (the earlier Rust plugin, PyPI), own venv",
    "hot-reloading": "pytest-hot-reloading 0.1.0a19 (PyPI), own venv, its daemon started by the first run",
}


@dataclass
class Invocation:
    """How one mode runs: interpreter, arguments appended to the pytest command, environment overrides and
    removals, and how many unmeasured runs it needs first (daemons: one to start, one to settle)."""

    python: str
    extra: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    warmups: int = 1
    #: daemon: the number of runs its daemon has served so far (None: not a daemon mode)
    served: Optional[Callable[[], int]] = None


def competitor_python(suite: str, mode: str, pins: list[str]) -> str:
    """The venv of competitor `mode` for `suite` (created and pinned on first use): the suite's own pins
    (`pins`, pytest included) plus the competitor's."""
    venv = suites.BASE / ("generated" if suite.startswith("gen-") else suite) / f"venv-{mode}"
    python = venv / "bin" / "python"
    wanted = [*pins, *COMPETITORS[mode]]
    marker = venv / ".ready"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not marker.exists() or marker.read_text() != "\n".join(wanted):
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted], check=True)
        marker.write_text("\n".join(wanted))
    return str(python)


def free_port() -> int:
    """A TCP port nobody listens on now (for hot-reloading's daemon)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon_status(python: str, cwd: str, args: list[str], env: dict[str, str]) -> int:
    """Runs served so far by the row's daemon (`--daemon-status`), -1 when none answers."""
    import re

    out = subprocess.run([python, "-m", "pytest", *args, "--daemon-status"], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120).stdout
    m = re.search(r"(\d+) served", out)
    return int(m.group(1)) if m else -1


@contextmanager
def invocation(mode: str, suite_python: str, competitor: Optional[str], cwd: str, row_args: list[str],
               base_env: dict[str, str]) -> Iterator[Invocation]:
    """Set a mode up for one row (start its daemon, pick its port) and tear it down afterwards.
    `competitor`: the competitor venv's interpreter (competitor modes only). `row_args`: the row's pytest
    arguments without the mode's extras (a daemon is started with them). Raises RuntimeError when the mode
    cannot start (the row then reports it instead of times)."""
    if mode == "plain":
        yield Invocation(suite_python, ["-p", "no:fastcollect"])
    elif mode == "cold-cache":
        # a cache of its own (pytest's cache_dir, and the user cache dir when the suite runs without
        # cacheprovider): clearing it must not take the other modes' cache and records with it
        with tempfile.TemporaryDirectory(prefix="fcbench-cold") as own:
            extra = ["--no-fastcollect-auto-daemon", "--fastcollect-cache-clear"]
            if "no:cacheprovider" not in row_args:  # else `cache_dir` is an unknown ini key (a warning)
                extra += ["-o", f"cache_dir={own}/pytest"]
            yield Invocation(suite_python, extra, {"XDG_CACHE_HOME": f"{own}/xdg"})
    elif mode == "warm-cache":
        yield Invocation(suite_python, ["--no-fastcollect-auto-daemon"])
    elif mode == "daemon":
        runtime = base_env.get("XDG_RUNTIME_DIR") or tempfile.mkdtemp(prefix="fcbench")
        os.chmod(runtime, 0o700)
        env = {"XDG_RUNTIME_DIR": runtime}
        full_env = {k: v for k, v in base_env.items() if k != "CI"} | env
        started = subprocess.run([suite_python, "-m", "pytest", *row_args, "--daemon-start"], cwd=cwd, env=full_env,
                                 capture_output=True, text=True, timeout=900)
        if started.returncode != 0:
            raise RuntimeError(f"--daemon-start exit {started.returncode}: {(started.stdout + started.stderr)[-300:]}")
        try:
            yield Invocation(suite_python, ["--fastcollect-auto-daemon"], env, ["CI"], warmups=1,
                             served=lambda: _daemon_status(suite_python, cwd, row_args, full_env))
        finally:
            subprocess.run([suite_python, "-m", "pytest", *row_args, "--daemon-stop"], cwd=cwd, env=full_env,
                           capture_output=True, timeout=120)
            for pid_file in Path(runtime, "pytest-fastcollect").glob("*.pid"):
                try:
                    os.kill(int(pid_file.read_text()), 15)
                except (OSError, ValueError):
                    pass
    elif mode == "rust-0.5.2":
        assert competitor
        yield Invocation(competitor, [])
    elif mode == "hot-reloading":
        assert competitor
        port = str(free_port())
        plugin = ["-p", "pytest_hot_reloading.plugin", "--daemon-port", port]
        try:
            yield Invocation(competitor, [*plugin, "--daemon-start-if-needed"], warmups=2)
        finally:
            subprocess.run([competitor, "-m", "pytest", *plugin, "--stop-daemon"], cwd=cwd, env=base_env,
                           capture_output=True, timeout=120)
            time.sleep(0.5)
            subprocess.run(["pkill", "-f", f"--daemon-port {port}"], capture_output=True)
    else:
        raise ValueError(mode)
