"""Discovery-cache benchmark (issue: SQLite discovery cache): the scan of sympy's and pandas' test trees with
a cold cache, a warm cache and no change, after touching 1 and 100 files (mtime only: rehash), and after
editing 1 and 100 files (content: re-parse), against the uncached scan.

    python benchmarks/cache.py [--suites sympy,pandas] [--repeat 5]

The test files of each installed package are copied to a temporary folder (the walk's file list), so edits
never touch the installed suite. Times are the medians of `--repeat` runs of the whole walk + cached scan
as the plugin does it (discovery.scan with a CacheLocation), in a fresh process per measurement, so the
SQLite page cache of the process is cold and the OS page cache warm. Counts (files, trusted, rehashed,
parsed) are printed beside every time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402

COPY = r"""
import importlib.util, json, os, shutil, sys
from pytest_fastcollect.discovery import scan
from pytest_fastcollect.paths import PathRules
pkg, dest = sys.argv[1], sys.argv[2]
root = os.path.dirname(importlib.util.find_spec(pkg).origin)
rules = PathRules(roots=[root], python_files=["test_*.py", "*_test.py"],
                  norecursedirs=["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"])
r = scan(rules, ["test"], ["Test"], 1)
for f in r.files:
    out = os.path.join(dest, os.path.relpath(f, os.path.dirname(root)))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy2(f, out)
print(json.dumps({"files": len(r.files)}))
"""

MEASURE = r"""
import json, sys, time
from pytest_fastcollect.cache import CacheLocation
from pytest_fastcollect.discovery import scan
from pytest_fastcollect.paths import PathRules
root, db, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rules = PathRules(roots=[root], python_files=["test_*.py", "*_test.py"],
                  norecursedirs=["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"])
loc = CacheLocation(db, False, "bench") if db != "-" else None
t = time.perf_counter()
r = scan(rules, ["test"], ["Test"], threads, loc)
dt = time.perf_counter() - t
c = r.cache
print(json.dumps({"seconds": dt, "files": len(r.files), "tests": r.tests_found(["Test"]),
                  "trusted": c.trusted if c else None, "rehashed": c.rehashed if c else None,
                  "parsed": c.parsed if c else len(r.files), "warning": c.warning if c else ""}))
"""


def run(python: str, code: str, *args: str) -> dict:
    out = subprocess.run([python, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def files_of(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*.py") if p.name.startswith("test_") or p.name.endswith("_test.py"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="sympy,pandas")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="scanner threads (0: one per core)")
    ns = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; threads={ns.threads or os.cpu_count()}; OS page cache warm, "
          f"medians of {ns.repeat} fresh processes")
    for name in [s for s in ns.suites.split(",") if s]:
        suite = suites.SUITES[name]()
        with tempfile.TemporaryDirectory(prefix=f"fastcollect-bench-{name}-") as tmp:
            tree = Path(tmp) / "tree"
            run(suite.python, COPY, name, str(tree))
            db = str(Path(tmp) / "discovery.sqlite")
            th = str(ns.threads)

            def measure(label: str, prepare=None, use_cache: bool = True) -> None:
                times, last = [], {}
                for _ in range(ns.repeat):
                    if prepare:
                        prepare()
                    last = run(suite.python, MEASURE, str(tree), db if use_cache else "-", th)
                    times.append(last["seconds"])
                print(f"{name:7} {label:28} median {statistics.median(times) * 1000:8.1f} ms "
                      f"(min {min(times) * 1000:7.1f}, max {max(times) * 1000:7.1f}); files {last['files']}, "
                      f"tests {last['tests']}, trusted {last['trusted']}, rehashed {last['rehashed']}, "
                      f"parsed {last['parsed']}{'; ' + last['warning'] if last.get('warning') else ''}")

            all_files = files_of(tree)
            measure("no cache (plain scan)", use_cache=False)
            measure("cold cache (first run)", prepare=lambda: [os.unlink(p) for p in Path(tmp).glob("discovery.sqlite*")])
            # let the racy window of the rows pass once, then measure the warm cache
            import time as _t

            _t.sleep(1.2)
            run(suite.python, MEASURE, str(tree), db, th)
            measure("warm cache, no change")
            for n in (1, 100):
                def touch(n: int = n) -> None:
                    for p in all_files[:n]:
                        os.utime(p)
                measure(f"warm cache, touch {n}", prepare=touch)
            counter = [0]
            for n in (1, 100):
                def edit(n: int = n) -> None:
                    counter[0] += 1
                    for p in all_files[:n]:
                        with open(p, "a", encoding="utf-8") as fh:
                            fh.write(f"\ndef test_bench_edit_{counter[0]}():\n    pass\n")
                measure(f"warm cache, edit {n}", prepare=edit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
