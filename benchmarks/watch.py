"""Watch mode against pytest-watcher: time from a save to the first test result and to the summary line.

    python benchmarks/watch.py sympy|click [--rounds 5] [--selection ARGS] [--json PATH] [--tools fastcollect,ptw]

Both tools watch the same suite with the same pytest arguments, each in a pseudo-terminal (so pytest's
output is not held back by a pipe's buffering), `-v` and no colours; the edit is a test-file save (a comment
appended, then removed: two saves per round). Measured from just before the write to the first result line
(`PASSED`/`FAILED`/...) and to the summary line of the run the save started; printed beside the number of
tests that run reported. Tools:

- fastcollect: `pytest --daemon-watch ARGS` (the warm daemon started first by `--daemon-start ARGS`; a
  test-file edit runs that file).
- ptw: pytest-watcher 0.6.3 (`ptw CWD --delay 0.05 ARGS -p no:fastcollect`: a plain, cold run of the whole
  selection per save; its default delay is 0.2 s, lowered to our 50 ms grouping window).

Timings need a quiet machine (nothing else running); the state is warm pyc unless PYTHONDONTWRITEBYTECODE
is set (printed). Suites come from benchmarks/suites.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
# watchdog 6.0.0: pytest-watcher 0.6.3 matches str patterns against the bytes paths watchdog 7 reports, and
# never triggers (with "." as its path it logs "Path b'./tests' is not under watched root b'.'")
PINS = ["watchfiles==1.3.0", "pytest-watcher==0.6.3", "watchdog==6.0.0"]
RESULT = re.compile(r" (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
SUMMARY = re.compile(r"^=+ (.*(?:passed|failed|error|skipped|deselected|no tests ran).*) in [\d.]+s.*=+\s*$", re.M)
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


class PtyProcess:
    """A process on a pseudo-terminal; its output with the time each chunk arrived."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        master, slave = os.openpty()
        self.master = master
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.text = ""
        self.marks: list[tuple[int, float]] = []  # (end offset, time)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            with self.lock:
                self.text += data.decode("utf-8", "replace")
                self.marks.append((len(self.text), now))

    def find(self, pattern: re.Pattern[str], start: int) -> tuple[float, re.Match[str]] | None:
        """(arrival time, match) of the first match of `pattern` at or after offset `start`."""
        with self.lock:
            match = pattern.search(self.text, start)
            if match is None:
                return None
            when = next(t for end, t in self.marks if end >= match.end())
            return when, match

    def wait(self, pattern: re.Pattern[str], start: int, timeout: float) -> tuple[float, re.Match[str]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.find(pattern, start)
            if got is not None:
                return got
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"{pattern.pattern!r} not seen; output tail:\n{self.text[-3000:]}")

    def offset(self) -> int:
        with self.lock:
            return len(self.text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        os.close(self.master)


def count_of(summary: str) -> int:
    return sum(int(n) for n, _ in COUNT.findall(summary))


def measure(tool: str, python: str, cwd: str, args: list[str], edit: Path, rounds: int, env: dict[str, str],
            timeout: float) -> list[dict[str, Any]]:
    bindir = os.path.dirname(python)
    if tool == "fastcollect":
        subprocess.run([python, "-m", "pytest", *args, "--daemon-start"], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=timeout)
        argv = [python, "-m", "pytest", "--daemon-watch", *args, "-v"]
        ready = re.compile(r"fastcollect watch: exit \d+ in [^\n]*waiting for changes")
    else:
        # (an absolute path: with ".", its watchdog observer rejects the events: "Path ./tests is not under
        # watched root .")
        argv = [os.path.join(bindir, "ptw"), os.path.abspath(cwd), "--delay", "0.05", *args, "-v", "-p", "no:fastcollect"]
        ready = None
    proc = PtyProcess(argv, cwd, env)
    rows = []
    try:
        if ready is not None:
            proc.wait(ready, 0, timeout)  # the first (whole) run
        else:
            time.sleep(3.0)  # the observer starts
        original = edit.read_text(encoding="utf-8")
        for i in range(rounds):
            for label, text in (("append a comment", original + f"\n# watch benchmark {i}\n"), ("remove it", original)):
                time.sleep(1.0)  # quiet before the save
                start = proc.offset()
                t0 = time.perf_counter()
                edit.write_text(text, encoding="utf-8")
                first_t, _ = proc.wait(RESULT, start, timeout)
                summary_t, summary = proc.wait(SUMMARY, start, timeout)
                if ready is not None:
                    proc.wait(ready, summary.end(), timeout)
                rows.append({"tool": tool, "round": i + 1, "edit": label, "first_result_s": round(first_t - t0, 3),
                             "summary_s": round(summary_t - t0, 3), "tests": count_of(summary.group(1)),
                             "summary": summary.group(1).strip()})
                print(f"{tool:11} round {i + 1} {label:17} first result {first_t - t0:7.3f} s  summary "
                      f"{summary_t - t0:7.3f} s  {count_of(summary.group(1)):6} tests  ({summary.group(1).strip()})",
                      flush=True)
        edit.write_text(original, encoding="utf-8")
    finally:
        proc.stop()
        if tool == "fastcollect":
            subprocess.run([python, "-m", "pytest", *args, "--daemon-stop"], cwd=cwd, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["sympy", "click"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--selection", help="pytest arguments instead of the suite's (one string)")
    parser.add_argument("--tools", default="fastcollect,ptw")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path)
    ns = parser.parse_args()
    info = json.loads(subprocess.run([sys.executable, str(HERE / "benchmarks" / "suites.py"), ns.suite], check=True,
                                     capture_output=True, text=True).stdout)
    python, cwd = info["python"], info["cwd"]
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS], check=True)
    if ns.suite == "sympy":
        site = subprocess.run([python, "-c", "import os, sympy; print(os.path.dirname(sympy.__file__))"],
                              check=True, capture_output=True, text=True).stdout.strip()
        edit = Path(site) / "combinatorics" / "tests" / "test_graycode.py"
        args = ["--pyargs", "sympy", "-m", "not slow and not tooslow", "-p", "no:cacheprovider"]
    else:
        edit = Path(cwd) / "tests" / "test_basic.py"
        args = ["-W", "ignore::DeprecationWarning", "-p", "no:cacheprovider"]
    if ns.selection:
        args = shlex.split(ns.selection)
    work = tempfile.mkdtemp(prefix="fcwb")
    os.chmod(work, 0o700)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(XDG_RUNTIME_DIR=work, PY_COLORS="0", COLUMNS="200")
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")  # ptw's runner: the suite's pytest
    pyc = "cold (PYTHONDONTWRITEBYTECODE set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "warm pyc"
    print(f"suite {ns.suite}, pytest {' '.join(args)}; edit {edit}; {pyc}; {os.cpu_count()} cores")
    rows: list[dict[str, Any]] = []
    for tool in ns.tools.split(","):
        rows += measure(tool, python, cwd, args, edit, ns.rounds, env, ns.timeout)
    print()
    for tool in ns.tools.split(","):
        mine = [r for r in rows if r["tool"] == tool]
        if mine:
            print(f"{tool:11} median first result {statistics.median(r['first_result_s'] for r in mine):7.3f} s, "
                  f"summary {statistics.median(r['summary_s'] for r in mine):7.3f} s, "
                  f"tests per run {sorted({r['tests'] for r in mine})} ({len(mine)} saves)")
    if ns.json:
        ns.json.write_text(json.dumps({"suite": ns.suite, "args": args, "pyc": pyc, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
