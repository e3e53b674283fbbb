"""-k/-m before import (issue #3): plain pytest against the plugin's first run (no records: every file is
imported and the collection recorded) and second run (records valid: files without a selected test are left
unimported), as alternating runs in one process tree, with counts beside every time.

    python benchmarks/selection.py [--suites sympy,pandas] [--pairs 5] [--pyc warm|cold|both] [--daemon]
                                   [--scenarios one,broad] [--json FILE]

Per pair, in this order:
  plain:  python -m pytest ARGS -p no:fastcollect
  first:  python -m pytest ARGS --no-fastcollect-auto-daemon     (records deleted just before)
  second: python -m pytest ARGS --no-fastcollect-auto-daemon     (the records the first run wrote)
and with --daemon (warm pyc only), a fourth side:
  daemon: python -m pytest ARGS --fastcollect-auto-daemon        (served by a warm daemon, with the records)
The daemon is off on the other sides (benchmarks/daemon.py measures it alone); the discovery cache is warm. Each run's
summary line is kept; a scenario whose summaries differ between the sides is marked NOT COMPARABLE. "files
imported" is the number of test files the scan found less those the plugin's header says it left unimported.
Wall clock of the whole process; CPU = user + sys of the process (a shared VM's steal time shows in wall
clock, much less in CPU time); the daemon side's CPU is only the client's and is not shown.

pyc states: warm = PYTHONDONTWRITEBYTECODE unset, one unmeasured run per side first (pytest's rewritten pyc
files exist); cold = PYTHONDONTWRITEBYTECODE=1 (this machine's default) and pytest's rewritten test-module pyc
files (`__pycache__/*-pytest-*.pyc` under the suite's package) deleted before every run, so every test module
that is imported is assert-rewritten again; the library's own pyc files (from pip install) are kept.

Scenarios: `one` = `-k <one test name>` (a full run of the selected test); `broad` = `-k "not
zzz_matches_nothing" --collect-only` (every test selected: the cost of recording and checking, no file can be
skipped). sympy runs `--pyargs sympy -m "not slow and not
tooslow"` (so -m is always on); pandas runs its `tests/frame` folder (a `--pyargs pandas` whole-suite run is a
usage error on both sides: see benchmarks/daemon.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402
from daemon import counts, run_timed  # noqa: E402

ONE_NAME = {"sympy": "test__aresame", "pandas": "test_getitem_pop_assign_name"}
LEFT = re.compile(r"fastcollect: -k/-m: (\d+) test files left unimported")
SCANNED = re.compile(r"scanned (\d+) files")


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds user+sys, exit code, output) of one process."""
    t = run_timed(cmd, cwd, env)
    return t.seconds, t.cpu, t.code, t.out


def files_imported(out: str) -> int | None:
    """Test files imported by a plugin run, from its header; None for plain pytest (no header line)."""
    scanned = SCANNED.search(out)
    if scanned is None:
        return None
    left = LEFT.search(out)
    return int(scanned.group(1)) - (int(left.group(1)) if left else 0)


def remove_rewritten_pyc(root: str) -> None:
    for pyc in Path(root).rglob("__pycache__/*-pytest-*.pyc"):
        pyc.unlink(missing_ok=True)


def remove_records(cache_home: str) -> None:
    for path in Path(cache_home).rglob("records-v*.sqlite*"):
        path.unlink(missing_ok=True)


def fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f})"


def bench_suite(name: str, pairs: int, cold: bool, daemon: bool = False, wanted: tuple[str, ...] = ("one", "broad")) -> dict:
    suite = getattr(suites, name)()
    python, cwd = suite.python, suite.cwd
    pkg_dir = subprocess.run([python, "-c", f"import {name}, os; print(os.path.dirname({name}.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    cache_home = tempfile.mkdtemp(prefix="fcsel")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("CI", None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["XDG_CACHE_HOME"] = cache_home  # records and discovery cache of this benchmark only (-p no:cacheprovider)
    daemon = daemon and not cold
    if daemon:
        runtime = tempfile.mkdtemp(prefix="fcsd")
        os.chmod(runtime, 0o700)
        env["XDG_RUNTIME_DIR"] = runtime
    if name == "pandas":
        options = [a for a in suite.args if a not in (name, "--pyargs")]
        base = [*options, f"--rootdir={cwd}", os.path.join(pkg_dir, "tests", "frame")]
    else:
        base = list(suite.args)
    scenarios = {"one": ["-k", ONE_NAME[name]], "broad": ["-k", "not zzz_matches_nothing", "--collect-only"]}
    result: dict = {"suite": name, "pyc": "cold" if cold else "warm", "scenarios": []}
    for scenario, extra in scenarios.items():
        if scenario not in wanted:
            continue
        args = [*base, *extra]
        plain_cmd = [python, "-m", "pytest", *args, "-p", "no:fastcollect"]
        plugin_cmd = [python, "-m", "pytest", *args, "--no-fastcollect-auto-daemon"]
        daemon_cmd = [python, "-m", "pytest", *args, "--fastcollect-auto-daemon"]
        sides = ("plain", "first", "second", "daemon") if daemon else ("plain", "first", "second")
        if not cold:
            timed(plain_cmd, cwd, env)  # unmeasured: pyc written, discovery cache filled
            timed(plugin_cmd, cwd, env)
        if daemon:
            started = subprocess.run([python, "-m", "pytest", *args, "--daemon-start"], cwd=cwd, env=env,
                                     capture_output=True, text=True)
            if started.returncode != 0:
                raise SystemExit(f"--daemon-start failed:\n{started.stdout}\n{started.stderr}")
            timed(daemon_cmd, cwd, env)
        times: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        summaries: dict[str, set] = {k: set() for k in times}
        imported: dict[str, set] = {k: set() for k in times}
        for _ in range(pairs):
            for side in sides:
                if side == "first":
                    remove_records(cache_home)
                if cold:
                    remove_rewritten_pyc(pkg_dir)
                cmd = {"plain": plain_cmd, "daemon": daemon_cmd}.get(side, plugin_cmd)
                seconds, cpu_seconds, code, out = timed(cmd, cwd, env)
                cpu[side].append(cpu_seconds)
                if side == "daemon" and "run by the warm daemon" not in out:
                    raise SystemExit(f"{name} {scenario}: a daemon run was not served:\n{out[-2000:]}")
                times[side].append(seconds)
                summaries[side].add((code, counts(out)))
                imported[side].add(files_imported(out))
        comparable = len(summaries["plain"]) == 1 and all(summaries[side] == summaries["plain"] for side in sides)
        comparable = comparable and all(code in (0, 1, 5) for code, _ in summaries["plain"])
        plain_med = statistics.median(times["plain"])
        row = {
            "scenario": scenario,
            "args": args,
            "summary": sorted(summaries["plain"])[0][1] if summaries["plain"] else "",
            "comparable": comparable,
            "summaries": {k: sorted(str(s) for s in v) for k, v in summaries.items()},
            "files_imported": {k: sorted(x for x in v if x is not None) for k, v in imported.items()},
            "seconds": times,
            "cpu_seconds": cpu,
            "ratio_first": plain_med / statistics.median(times["first"]),
            "ratio_second": plain_med / statistics.median(times["second"]),
        }
        if daemon:
            row["ratio_daemon"] = plain_med / statistics.median(times["daemon"])
        result["scenarios"].append(row)
        mark = "" if comparable else "  NOT COMPARABLE"
        print(f"{name} {scenario} [{result['pyc']} pyc] '{row['summary']}'{mark}", flush=True)
        for side in sides:
            files = row["files_imported"][side]
            files_text = f", files imported {files}" if files else ""
            cpu_text = "" if side == "daemon" else f"; CPU {statistics.median(cpu[side]):.3f} s"
            print(f"  {side:6s} {fmt(times[side])}{cpu_text}{files_text}", flush=True)
        cpu_ratio = statistics.median(cpu["plain"]) / statistics.median(cpu["second"])
        row["cpu_ratio_second"] = cpu_ratio
        ratios = (f"  ratio plain/first {row['ratio_first']:.2f}x, plain/second {row['ratio_second']:.2f}x "
                  f"(CPU {cpu_ratio:.2f}x)")
        if daemon:
            ratios += f", plain/daemon {row['ratio_daemon']:.2f}x"
        print(ratios, flush=True)
    if daemon:
        subprocess.run([python, "-m", "pytest", *base, "--daemon-stop"], cwd=cwd, env=env, capture_output=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="sympy,pandas")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--pyc", choices=["warm", "cold", "both"], default="both")
    ap.add_argument("--daemon", action="store_true", help="also a side served by a warm daemon (warm pyc)")
    ap.add_argument("--scenarios", default="one,broad")
    ap.add_argument("--json", default="", help="written after each suite")
    ns = ap.parse_args()
    states = {"warm": [False], "cold": [True], "both": [False, True]}[ns.pyc]
    doc = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "pairs": ns.pairs,
        "results": [],
    }
    for cold in states:
        for name in ns.suites.split(","):
            doc["results"].append(bench_suite(name, ns.pairs, cold, ns.daemon, tuple(ns.scenarios.split(","))))
            if ns.json:
                Path(ns.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
