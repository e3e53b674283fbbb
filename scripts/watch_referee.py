"""The soundness referee of watch mode (issue 19): a scripted edit sequence on a real suite, driven through the
real `pytest --daemon-watch` loop (watchfiles, the warm daemon, the narrowed runs).

    python scripts/watch_referee.py sympy|click [--json PATH]

For each edit (a test file, a module imported by many test files, one imported by few, a conftest, a new
test file, a deleted test file) and for its revert: the tests the watch loop ran (the record its run wrote:
pytest_fastcollect.parity.recorder in every run) must include every test whose collection or outcome differs
between a full plain run (`-p no:fastcollect`) before and after the edit. A miss is a test that differs but
did not run; the script prints one line per step with the counts (differing, ran, missed, and what the loop
said) and exits 1 on any miss. Not timed (the machine may be loaded).

The suites are installed by benchmarks/suites.py (the plugin from build/wheels, plus watchfiles 1.3.0 here);
the suite's files are edited in place and restored at the end, also after an error. A test an edit removes
counts as covered when the watch run was the whole selection or ran its file (it cannot run what is gone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
WATCHFILES = "watchfiles==1.3.0"
WAITING = re.compile(r"^fastcollect watch: (exit \d+ in [^\n]*waiting for changes|[^\n]*nothing to run[^\n]*)$", re.M)


@dataclass
class Edit:
    """One step: `files` maps a path (relative to `base`) to its new text (None: delete it); the revert
    restores what was there (or deletes what was new)."""

    name: str
    files: dict[str, str | None]


@dataclass
class Suite:
    python: str
    cwd: str
    args: list[str]
    base: Path  # the folder the edits' paths are relative to
    setup: dict[str, str] = field(default_factory=dict)  # files written before the baseline (kept to the end)
    edits: list[Edit] = field(default_factory=list)


def _suite(name: str) -> Suite:
    info = json.loads(subprocess.run([sys.executable, str(HERE / "benchmarks" / "suites.py"), name], check=True,
                                     capture_output=True, text=True).stdout)
    python, cwd = info["python"], info["cwd"]
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", WATCHFILES], check=True)
    if name == "sympy":
        site = subprocess.run([python, "-c", "import os, sympy; print(os.path.dirname(sympy.__file__))"],
                              check=True, capture_output=True, text=True).stdout.strip()
        base = Path(site)
        comb = "combinatorics"
        return Suite(python, cwd, ["--pyargs", "sympy.combinatorics", "-m", "not slow and not tooslow", "-p",
                                   "no:cacheprovider"], base, edits=[
            Edit("a test file", {f"{comb}/tests/test_graycode.py": _append(base / comb / "tests/test_graycode.py",
                                 "\ndef test_watch_probe():\n    assert GrayCode(3).n == 4\n")}),
            Edit("a module imported by many test files", {f"{comb}/permutations.py": _append(
                base / comb / "permutations.py", _RAISE.format(cls="Permutation", attr="order"))}),
            Edit("a module imported by few test files", {f"{comb}/graycode.py": _append(
                base / comb / "graycode.py", _RAISE.format(cls="GrayCode", attr="rank"))}),
            Edit("a conftest", {"conftest.py": _append(base / "conftest.py", _PROBE_FIXTURE.format(word="graycode"))}),
            Edit("a new test file", {f"{comb}/tests/test_watch_new.py":
                                     "def test_new_passes():\n    pass\n\ndef test_new_fails():\n    assert 0\n"}),
            Edit("a deleted test file", {f"{comb}/tests/test_graycode.py": None}),
        ])
    if name == "click":
        base = Path(cwd) / "tests"
        return Suite(python, cwd, ["-W", "ignore::DeprecationWarning", "-p", "no:cacheprovider"], base,
                     setup={"watch_helper.py": "VALUE = 1\n",
                            "test_watch_helper.py": "from watch_helper import VALUE\n\ndef test_value():\n    assert VALUE == 1\n"},
                     edits=[
            Edit("a test file", {"test_basic.py": _append(base / "test_basic.py",
                                 "\ndef test_watch_probe():\n    assert 1 + 1 == 3\n")}),
            Edit("a module imported by few test files", {"watch_helper.py": "VALUE = 2\n"}),
            Edit("a conftest", {"conftest.py": _append(base / "conftest.py", _PROBE_FIXTURE.format(word="test_parser"))}),
            Edit("a new test file", {"test_watch_new.py": "def test_new_passes():\n    pass\n\ndef test_new_fails():\n    assert 0\n"}),
            Edit("a deleted test file", {"test_parser.py": None}),
        ])
    raise SystemExit(f"unknown suite {name} (sympy or click)")


#: An edit that makes every caller fail at once (a wrong value could send an algorithm into a long loop).
_RAISE = """

def _watch_probe(*args, **kwargs):
    raise RuntimeError("watch referee probe")


{cls}.{attr} = property(_watch_probe) if isinstance({cls}.__dict__.get("{attr}"), property) else _watch_probe
"""

_PROBE_FIXTURE = '''

import pytest as _watch_pytest


@_watch_pytest.fixture(autouse=True)
def _watch_probe(request):
    if "{word}" in request.node.nodeid:
        raise RuntimeError("watch referee probe")
'''


def _append(path: Path, text: str) -> str:
    return path.read_text(encoding="utf-8") + text


class Files:
    """Edits files under `base` and puts them back."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.saved: dict[Path, str | None] = {}

    def write(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            path = self.base / rel
            if path not in self.saved:
                self.saved[path] = path.read_text(encoding="utf-8") if path.exists() else None
            if text is None:
                path.unlink()
            else:
                path.write_text(text, encoding="utf-8")
            _bump(path)

    def revert(self, files: dict[str, str | None]) -> None:
        for rel in files:
            path = self.base / rel
            old = self.saved.pop(path)
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(old, encoding="utf-8")
                _bump(path)

    def restore_all(self) -> None:
        for path, old in list(self.saved.items()):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(old, encoding="utf-8")
        self.saved.clear()


def _bump(path: Path) -> None:
    """A new mtime even on a coarse clock (the daemon's and the loop's change checks see it)."""
    if path.exists():
        t = time.time() + 1
        os.utime(path, (t, t))


def outcomes(record: dict[str, Any]) -> dict[str, tuple]:
    """node ID -> (collected, ((when, outcome), ...)) from a recorder record."""
    out: dict[str, list] = {nodeid: [] for nodeid in record.get("items", [])}
    for nodeid, when, outcome, _wasxfail in record.get("reports", []):
        out.setdefault(nodeid, []).append((when, outcome))
    return {k: tuple(v) for k, v in out.items()}


def differing(before: dict[str, tuple], after: dict[str, tuple]) -> set[str]:
    return {n for n in set(before) | set(after) if before.get(n) != after.get(n)}


def uncovered(diff: set[str], ran: set[str], after: dict[str, tuple], whole: bool) -> list[str]:
    """The differing node IDs the watch run did not cover: a test that exists after the edit must have run;
    one the edit removed is covered when the run was the whole selection or ran its file (a run cannot run
    a test that is gone; it shows it gone)."""
    ran_files = {n.split("::")[0] for n in ran}
    return sorted(n for n in diff if n not in ran
                  and not (n not in after and (whole or n.split("::")[0] in ran_files)))


def plain_run(suite: Suite, env: dict[str, str], record: Path) -> dict[str, tuple]:
    record.unlink(missing_ok=True)
    subprocess.run([suite.python, "-m", "pytest", *suite.args, "-p", "no:fastcollect", "-p",
                    "pytest_fastcollect.parity.recorder", "-q"], cwd=suite.cwd, env={**env, "FASTCOLLECT_PARITY_RECORD": str(record)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    return outcomes(json.loads(record.read_text()))


class Loop:
    """The watch loop, piped; its output collected on a thread."""

    def __init__(self, suite: Suite, env: dict[str, str], record: Path) -> None:
        self.record = record
        argv = [suite.python, "-m", "pytest", "--daemon-watch", *suite.args, "-p", "pytest_fastcollect.parity.recorder", "-q"]
        self.proc = subprocess.Popen(argv, cwd=suite.cwd, env={**env, "FASTCOLLECT_PARITY_RECORD": str(record)},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.text += line

    def statuses(self) -> list[str]:
        with self.lock:
            return [m.group(0) for m in WAITING.finditer(self.text)]

    def wait(self, count: int, timeout: float = 1800) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.statuses()
            if len(got) >= count:
                return got[count - 1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"the watch loop said nothing ({count} statuses expected); output:\n{self.text[-4000:]}")

    def last_plan(self) -> str:
        with self.lock:
            lines = [ln for ln in self.text.splitlines() if ln.startswith("fastcollect watch:") and ("running" in ln or "nothing to run" in ln)]
        return lines[-1] if lines else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["sympy", "click"])
    parser.add_argument("--json", type=Path)
    ns = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below puts the suite's files back
    suite = _suite(ns.suite)
    work = Path(tempfile.mkdtemp(prefix="fcwatch"))
    runtime = work / "rt"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(XDG_RUNTIME_DIR=str(runtime), TMPDIR=str(work), PY_COLORS="0")
    files = Files(suite.base)
    rows: list[dict[str, Any]] = []
    missed_total = 0
    loop: Loop | None = None
    try:
        for rel, text in suite.setup.items():  # kept to the end (not through `files`: edits revert to them)
            (suite.base / rel).write_text(text, encoding="utf-8")
        baseline = plain_run(suite, env, work / "plain.json")
        loop = Loop(suite, env, work / "watch.json")
        seen = 1
        loop.wait(seen)
        after = baseline
        for edit in suite.edits:
            for step, apply in ((edit.name, True), (f"{edit.name}, reverted", False)):
                before = baseline if apply else after  # the revert's before: the edit's after
                (files.write if apply else files.revert)(edit.files)
                seen += 1
                status = loop.wait(seen)
                plan = loop.last_plan()
                ran = set()
                if "nothing to run" not in status and loop.record.exists():
                    ran = set(outcomes(json.loads(loop.record.read_text())))
                after = plain_run(suite, env, work / "plain.json")
                diff = differing(before, after)
                missed = uncovered(diff, ran, after, whole="running the whole selection" in plan)
                missed_total += len(missed)
                row = {"step": step, "differing": len(diff), "ran": len(ran), "missed": missed, "loop": plan,
                       "status": status}
                rows.append(row)
                print(f"{ns.suite:6} {step:48} differing {len(diff):5}  ran {len(ran):5}  missed {len(missed)}  | "
                      f"{plan.removeprefix('fastcollect watch: ')}", flush=True)
                for nodeid in missed[:10]:
                    print(f"    missed: {nodeid}")
                loop.record.unlink(missing_ok=True)
                if not apply:
                    baseline = after
    finally:
        if loop is not None:
            loop.stop()
        files.restore_all()
        if suite.setup:
            for rel in suite.setup:
                (suite.base / rel).unlink(missing_ok=True)
        for pid_file in (runtime / "pytest-fastcollect").glob("*.pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    print(f"{ns.suite}: {len(rows)} steps, {missed_total} missed")
    if ns.json:
        ns.json.write_text(json.dumps({"suite": ns.suite, "args": suite.args, "rows": rows, "missed": missed_total}, indent=1))
    return 1 if missed_total else 0


if __name__ == "__main__":
    sys.exit(main())
