"""The edit-run loop through the warm daemon (issue: staying warm while code changes): plain pytest against
the daemon across a scripted edit sequence, in one process tree, with counts beside every time.

    python benchmarks/edits.py [--suite gen-10k-heavy] [--rounds 3] [--pyc warm|cold] [--keyword K] [--json FILE]

Command of every run: `python -m pytest --collect-only -q -p no:cacheprovider` in the suite's folder (the whole
suite is imported: the run shows the daemon's warm state, not the -k/-m selection); with `--keyword K`, `-k K`
is added to every run on both sides (the focused loop of a developer who runs the tests of one module). pyc: warm
(PYTHONDONTWRITEBYTECODE unset, one unmeasured run per side first) or cold (PYTHONDONTWRITEBYTECODE=1, this
machine's default, and every __pycache__ under the suite removed before each measured run: every module a
run imports is assertion-rewritten again; the daemon's template keeps what it imported). A daemon is started once
(`--daemon-start`), in a socket folder of its own; the discovery cache is warm.

Steps, in this order, each round:
  no change             nothing edited (the warm baseline)
  edit one test file    one line appended to one test module
  edit a shared module  one line appended to bench_helper.py, which every test module imports (heavy suites)
  add a test file       a new test module
  delete a test file    that module removed again
  edit the ini file     a comment appended to pytest.ini (level 1 must be rebuilt: level 0 serves the run)
After each edit: `plain` (-p no:fastcollect), then `first` (the first daemon-side run after the edit: served
from level 1 with the changed modules re-imported in the child, or from level 0 (pytest warm, the project
imported fresh) when level 1 cannot serve it, or local when the daemon refuses), then the harness waits
until the daemon is warm with the new code (`--daemon-status`: template ready, nothing changed since its
warm-up, no re-warm going; the wait is reported), then `second`. Edits are undone after the last round.

Targets (issue): after editing one test file, `first` at most 1.3x the no-change run; after editing a module
every test imports, `first` at least 2x faster than plain and `second` back at warm speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate  # noqa: E402
import report  # noqa: E402
import run as runner  # noqa: E402
from daemon import counts, run_timed, served_count, status  # noqa: E402

RUN_LOGGED = re.compile(r"run (\d+): pid \d+, level (\d), (\d+) changed, (\d+) evicted")
NEW_FILE = "pkg_000/sub_00/test_mod_added.py"


class Suite:
    """The generated suite on disk and the edits of the sequence (each undone by restore())."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.test_file = next(iter(sorted(root.glob("pkg_000/sub_00/test_mod_*.py"))))
        self.originals = {p: p.read_bytes() for p in (self.test_file, root / "bench_helper.py", root / "pytest.ini")}
        self.serial = 0

    def _append(self, path: Path, line: str) -> None:
        self.serial += 1
        with path.open("a") as fh:
            fh.write(f"{line} {self.serial}\n")

    def edit_test_file(self) -> None:
        self._append(self.test_file, "# edited")

    def edit_shared_module(self) -> None:
        self._append(self.root / "bench_helper.py", "EDITED =")

    def add_test_file(self) -> None:
        (self.root / NEW_FILE).write_text("def test_added():\n    assert True\n")

    def delete_test_file(self) -> None:
        (self.root / NEW_FILE).unlink()

    def edit_ini(self) -> None:
        self._append(self.root / "pytest.ini", "# edited")

    def restore(self) -> None:
        for path, data in self.originals.items():
            path.write_bytes(data)
        (self.root / NEW_FILE).unlink(missing_ok=True)


def steps(suite: Suite) -> list[tuple[str, Callable[[], None] | None]]:
    return [
        ("no change", None),
        ("edit one test file", suite.edit_test_file),
        ("edit a shared module", suite.edit_shared_module),
        ("add a test file", suite.add_test_file),
        ("delete a test file", suite.delete_test_file),
        ("edit the ini file", suite.edit_ini),
    ]


def served(python: str, cwd: str, env: dict[str, str]) -> tuple[int, str]:
    """(requests served so far, what the daemon's log says of the last one): `-q` runs print no header."""
    out = status(python, cwd, [], env)
    log = re.search(r"^\s+log\s+(\S+)", out, re.M)
    last = ""
    if log:
        try:
            runs = RUN_LOGGED.findall(Path(log.group(1)).read_text(errors="replace"))
            if runs and runs[-1][1] == "0":
                last = "level 0: the project imported fresh"
            elif runs:
                last = f"{runs[-1][2]} changed, {runs[-1][3]} modules re-imported"
        except OSError:
            pass
    return served_count(out), last


def wait_warm(python: str, cwd: str, env: dict[str, str], timeout: float = 180) -> float:
    """Seconds until the daemon is warm with the files as they are (see the module docstring)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        out = status(python, cwd, [], env)
        if (re.search(r"template\s+ready", out) and "; 0 changed since warm-up" in out
                and not re.search(r"re-warm\s+(level 1 pid|due)", out)):
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise SystemExit(f"the daemon did not get warm within {timeout:.0f}s")


def remove_pycache(root: Path) -> None:
    import shutil

    for folder in root.rglob("__pycache__"):
        shutil.rmtree(folder, ignore_errors=True)


def bench(name: str, rounds: int, cold: bool = False, keyword: str | None = None) -> dict:
    target = runner.make_target(name, runner.generated_python)
    python, cwd = target.python, target.cwd
    suite = Suite(Path(cwd))
    env = dict(os.environ)
    for var in ("PYTHONDONTWRITEBYTECODE", "CI"):
        env.pop(var, None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    measure = (lambda cmd: (remove_pycache(suite.root), run_timed(cmd, cwd, env))[1]) if cold else (
        lambda cmd: run_timed(cmd, cwd, env))
    runtime = tempfile.mkdtemp(prefix="fced")
    os.chmod(runtime, 0o700)
    env["XDG_RUNTIME_DIR"] = runtime
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fcec")
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", *(["-k", keyword] if keyword else [])]
    plain_cmd = [python, "-m", "pytest", *args, "-p", "no:fastcollect"]
    daemon_cmd = [python, "-m", "pytest", *args, "--fastcollect-auto-daemon"]
    rows: dict[str, dict[str, list]] = {}
    try:
        subprocess.run([python, "-m", "pytest", *args, "--daemon-start"], cwd=cwd, env=env, check=True,
                       capture_output=True)
        run_timed(plain_cmd, cwd, env)
        run_timed(daemon_cmd, cwd, env)
        for r in range(rounds):
            for step, edit in steps(suite):
                if edit is not None:
                    edit()
                row = rows.setdefault(step, {"plain": [], "first": [], "second": [], "wait": [], "first_how": [],
                                             "counts": []})
                plain = measure(plain_cmd)
                before, _ = served(python, cwd, env)
                first = measure(daemon_cmd)
                after, how = served(python, cwd, env)
                wait = wait_warm(python, cwd, env)
                before2, _ = served(python, cwd, env)
                second = measure(daemon_cmd)
                second_served = served(python, cwd, env)[0] == before2 + 1
                row["plain"].append(plain.seconds)
                row["first"].append(first.seconds)
                row["second"].append(second.seconds)
                row["wait"].append(wait)
                row["first_how"].append(f"served: {how}" if after == before + 1 else "local")
                same = counts(plain.out) == counts(first.out) == counts(second.out) and second_served
                row["counts"].append(counts(plain.out) if same else f"DIFFER: {counts(plain.out)} / "
                                     f"{counts(first.out)} / {counts(second.out)} (second served: {second_served})")
                print(f"round {r + 1} {step:<22} plain {plain.seconds:.3f}  first {first.seconds:.3f} "
                      f"({row['first_how'][-1]})  warm again after {wait:.1f}s  second {second.seconds:.3f}",
                      flush=True)
    finally:
        suite.restore()
        subprocess.run([python, "-m", "pytest", "--daemon-stop"], cwd=cwd, env=env, capture_output=True)
    return {"suite": name, "rounds": rounds, "pyc": "cold" if cold else "warm", "keyword": keyword, "rows": rows,
            "machine": report.machine(),
            "versions": runner.versions(python)}


def table(result: dict) -> str:
    rows = result["rows"]
    base = statistics.median(rows["no change"]["second"])
    out = ["| step | counts (every side) | plain | first run after the edit | warm again after | second run | "
           "plain/first | plain/second | first/no-change | second/no-change |", "|---" * 10 + "|"]
    for step, row in rows.items():
        p, f, s, w = (statistics.median(row[k]) for k in ("plain", "first", "second", "wait"))
        how = ", ".join(sorted(set(row["first_how"])))
        cnt = "; ".join(sorted(set(row["counts"])))
        out.append(f"| {step} | {cnt} | {p:.3f} s | {f:.3f} s ({how}) | {w:.1f} s | {s:.3f} s | {p / f:.2f}x | "
                   f"{p / s:.2f}x | {f / base:.2f}x | {s / base:.2f}x |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="gen-10k-heavy", choices=sorted(runner.GEN_SUITES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pyc", choices=["warm", "cold"], default="warm")
    ap.add_argument("--keyword", help="add -k KEYWORD to every run (e.g. one module's name)")
    ap.add_argument("--json", type=Path)
    ns = ap.parse_args()
    if generate.PRESETS[runner.GEN_SUITES[ns.suite]][1] != "heavy":
        print("note: light suites do not import bench_helper: 'edit a shared module' then changes nothing imported")
    result = bench(ns.suite, ns.rounds, ns.pyc == "cold", ns.keyword)
    command = "--collect-only -q" + (f" -k {ns.keyword}" if ns.keyword else "")
    print(f"\n{ns.suite}, {ns.rounds} rounds, medians, {ns.pyc} pyc, `{command}`; {result['versions']}")
    print(table(result))
    if ns.json:
        ns.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
