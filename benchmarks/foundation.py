"""Foundation benchmark (issue: foundation): scanner throughput on real test trees, and the plugin's
overhead on a plain `pytest --collect-only` of click.

    python benchmarks/foundation.py [--runs 5] [--suites sympy,pandas] [--json OUT]

Part 1, first parse (no cache exists yet): for each installed package's test tree, files scanned, test
definitions found (static, before parametrization), bytes, seconds and files/s, with 1 thread and with
one thread per core. Part 2: click's suite, `--collect-only -q` with `-p no:fastcollect` and with the
plugin, alternating, `--runs` pairs, in two pyc states: warm (PYTHONDONTWRITEBYTECODE unset, pyc files
written by a first unmeasured run) and cold (PYTHONDONTWRITEBYTECODE=1 and the suite's __pycache__ removed
before every run: every test module is rewritten and compiled again).
Counts (collected/selected) are printed beside every time, so a run that loses tests shows at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402

SCAN_SNIPPET = r"""
import json, os, sys, time, importlib.util
from pytest_fastcollect.discovery import scan
from pytest_fastcollect.paths import PathRules
pkg = sys.argv[1]; threads = int(sys.argv[2])
root = os.path.dirname(importlib.util.find_spec(pkg).origin)
rules = PathRules(roots=[root], python_files=["test_*.py", "*_test.py"],
                  norecursedirs=["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"])
t = time.perf_counter()
r = scan(rules, ["test"], ["Test"], threads)
dt = time.perf_counter() - t
size = sum(os.path.getsize(f) for f in r.files)
print(json.dumps({"root": root, "files": len(r.files), "tests": r.tests_found(["Test"]), "bytes": size,
                  "seconds": dt, "walk_seconds": r.walk_seconds, "uncertain": r.uncertain,
                  "parse_errors": r.parse_errors, "threads": r.threads}))
"""

COLLECTED = re.compile(r"(\d+)(?:/(\d+))? tests? collected(?: \((\d+) deselected\))?")


def scan_tree(suite: suites.Suite, package: str, threads: int) -> dict:
    out = subprocess.run([suite.python, "-c", SCAN_SNIPPET, package, str(threads)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def drop_test_pyc(suite: suites.Suite) -> None:
    """Cold pyc for the suite's own files: pytest's rewriter reads an existing pyc even under
    PYTHONDONTWRITEBYTECODE=1, so the __pycache__ folders under the suite's folder are removed."""
    for folder in list(Path(suite.cwd).rglob("__pycache__")):
        shutil.rmtree(folder, ignore_errors=True)


def timed_collect(suite: suites.Suite, plugin: bool, cold: bool) -> tuple[float, str]:
    env = dict(os.environ)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        drop_test_pyc(suite)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    args = [suite.python, "-m", "pytest", "--collect-only", "-q", *suite.args]
    if not plugin:
        args += ["-p", "no:fastcollect"]
    else:
        args.append("--no-fastcollect-auto-daemon")  # the in-process plugin's overhead, not the daemon's
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=suite.cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1]
    m = COLLECTED.search(last)
    counts = f"selected {m.group(1)}, collected {m.group(2) or m.group(1)}" if m else last
    return dt, f"exit {proc.returncode}, {counts}"


def overhead(suite: suites.Suite, runs: int, cold: bool) -> dict:
    timed_collect(suite, True, cold)  # warm-up: pyc files written (warm state), OS caches filled
    timed_collect(suite, False, cold)
    plain: list[float] = []
    plug: list[float] = []
    counts = set()
    for _ in range(runs):
        t, c = timed_collect(suite, False, cold)
        plain.append(t)
        counts.add(("plain", c))
        t, c = timed_collect(suite, True, cold)
        plug.append(t)
        counts.add(("plugin", c))
    return {
        "state": "cold pyc (PYTHONDONTWRITEBYTECODE=1)" if cold else "warm pyc",
        "plain": plain,
        "plugin": plug,
        "ratio_median": statistics.median(plug) / statistics.median(plain),
        "counts": sorted(counts),
    }


def instructions(suite: suites.Suite) -> dict:
    """Instructions executed (valgrind callgrind, deterministic with PYTHONHASHSEED=0) by one
    `--collect-only -q` per side, cold pyc; both sides run at once, one per core. Wall clocks on a shared
    2-core VM vary by 10-30% between runs; instruction counts do not."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    drop_test_pyc(suite)
    base = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", suite.python, "-m", "pytest",
            "--collect-only", "-q", *suite.args]
    sides = {
        "plain": ["-p", "no:fastcollect"],
        "plugin loaded, off": ["--no-fastcollect"],
        "plugin": ["--no-fastcollect-auto-daemon"],
    }
    procs = {name: subprocess.Popen(base + extra, cwd=suite.cwd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True) for name, extra in sides.items()}
    out = {}
    for name, proc in procs.items():
        _, err = proc.communicate()
        m = re.search(r"Collected : (\d+)", err)
        out[name] = int(m.group(1)) if m else None
    return out


def fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--suites", default="sympy,pandas")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--instructions", action="store_true", help="also count instructions with callgrind (~5 min)")
    ns = ap.parse_args()
    results: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version()}, "scan": [], "overhead": []}
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    print("\n== first parse (no cache) of installed test trees")
    for name in [s for s in ns.suites.split(",") if s]:
        suite = suites.SUITES[name]()
        for threads in (1, 0):
            r = scan_tree(suite, name, threads)
            r["suite"] = name
            results["scan"].append(r)
            print(f"{name:7} threads={r['threads']}: {r['files']} files, {r['tests']} test definitions, "
                  f"{r['bytes'] / 1e6:.1f} MB, {r['seconds']:.3f} s (walk {r['walk_seconds'] * 1000:.1f} ms), "
                  f"{r['files'] / r['seconds']:.0f} files/s, {r['bytes'] / 1e6 / r['seconds']:.1f} MB/s; "
                  f"{r['uncertain']} need import, {r['parse_errors']} parse errors")
    print(f"\n== overhead on `pytest --collect-only -q` of click {suites.CLICK_VERSION}, {ns.runs} alternating pairs")
    click = suites.click()
    for cold in (False, True):
        o = overhead(click, ns.runs, cold)
        results["overhead"].append(o)
        print(f"{o['state']}: plain {fmt(o['plain'])}; plugin {fmt(o['plugin'])}; "
              f"ratio plugin/plain {o['ratio_median']:.3f} ({(o['ratio_median'] - 1) * 100:+.1f}%)")
        for side, c in o["counts"]:
            print(f"    {side}: {c}")
    if ns.instructions:
        counts = instructions(click)
        results["instructions"] = counts
        print("\n== instructions (callgrind, cold pyc, PYTHONHASHSEED=0), one `--collect-only -q` of click")
        for name, n in counts.items():
            print(f"{name:20} {n:>16,} ({(n / counts['plain'] - 1) * 100:+.2f}% vs plain)")
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
