"""Instant re-runs (issue 20): plain pytest, the same command served with the early hand-off (the default),
and served without it (PYTEST_FASTCOLLECT_EARLY=0: the in-process hand-off after pytest and its plugins are
imported), as alternating runs in one process tree, with counts beside every time.

    python benchmarks/instant.py [--scenarios plugins:trivial,sympy:one,...] [--pairs 10] [--cold] [--json F]

Per scenario: a daemon is started with `--daemon-start` and the scenario's arguments in a socket folder of its
own, one unmeasured run per side, then `--pairs` rounds of
  plain:  python -m pytest ARGS -p no:fastcollect
  early:  python -m pytest ARGS                                      (must say "handed off before pytest")
  late:   PYTEST_FASTCOLLECT_EARLY=0 python -m pytest ARGS           (must be served, not early)
  floor:  python -c pass
Whole-process wall seconds (medians, min/max); counts are the summary line without its time; a row whose
counts differ between the sides, or whose runs were not served as said, is marked NOT COMPARABLE.
`pth` (plugins venv): `python -c pass` with the wheel's .pth hook and with it moved away, alternating.

pyc state: warm (PYTHONDONTWRITEBYTECODE unset) unless --cold (set: every module the client imports is
compiled again on each run, as on this machine's default environment).

Scenarios: plugins:trivial (one trivial test; xdist, hypothesis and pytest-cov installed), plugins:nohyp
(the same with `-p no:hypothesispytest`: that plugin imports hypothesis, 0.14 s, in every session's
terminal summary, plain or served), sympy:one
(`test_Poly_mixed_operations`), sympy:collect (`--collect-only -q` of the whole suite), sympy:k (`-k` one
test over the whole suite), pandas:one, click:full (click's whole suite).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402
from daemon import counts, run_timed, stop_daemons  # noqa: E402

EARLY = "handed off before pytest was imported"
SERVED = "run by the warm daemon"
DEFAULT = "plugins:trivial,plugins:nohyp,plugins:pth,sympy:one,sympy:k,sympy:collect,pandas:one,click:full"


def scenario_args(name: str, scenario: str, suite: suites.Suite) -> list[str]:
    base = list(suite.args)
    pkg = [a for a in base if a not in (name, "--pyargs")]
    if name == "sympy":
        root = subprocess.run([suite.python, "-c", "import sympy, os; print(os.path.dirname(sympy.__file__))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        if scenario == "one":
            return [*pkg, f"--rootdir={suite.cwd}", f"{root}/polys/tests/test_polytools.py::test_Poly_mixed_operations", "-q"]
        if scenario == "k":
            return [*base, "-k", "test_Poly_mixed_operations", "-q"]
        return [*base, "--collect-only", "-q"]
    if name == "pandas":
        root = subprocess.run([suite.python, "-c", "import pandas, os; print(os.path.dirname(pandas.__file__))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        return [*pkg, f"--rootdir={suite.cwd}",
                f"{root}/tests/frame/test_api.py::TestDataFrameMisc::test_getitem_pop_assign_name", "-q"]
    if scenario == "nohyp":  # hypothesis' plugin imports hypothesis in every session's terminal summary
        return [*base, "-p", "no:hypothesispytest", "-q"]
    return [*base, "-q"]


def med(ts: list[float]) -> str:
    return f"{statistics.median(ts):.3f} s ({min(ts):.3f}-{max(ts):.3f})"


def bench(name: str, scenario: str, pairs: int, cold: bool) -> dict:
    suite = getattr(suites, name)()
    python, cwd = suite.python, suite.cwd
    runtime = tempfile.mkdtemp(prefix="fci")
    os.chmod(runtime, 0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CI")}
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["XDG_RUNTIME_DIR"] = runtime
    late_env = {**env, "PYTEST_FASTCOLLECT_EARLY": "0"}
    row: dict = {"suite": name, "scenario": scenario, "pyc": "cold" if cold else "warm"}
    if scenario == "pth":
        return bench_pth(python, cwd, env, pairs, row)
    args = scenario_args(name, scenario, suite)
    row["args"] = args
    try:
        started = subprocess.run([python, "-m", "pytest", *args, "--daemon-start"], cwd=cwd, env=env,
                                 capture_output=True, text=True)
        if started.returncode != 0:
            raise SystemExit(f"{name}: --daemon-start failed:\n{started.stdout}\n{started.stderr}")
        plain = [python, "-m", "pytest", *args, "-p", "no:fastcollect"]
        ours = [python, "-m", "pytest", *args]
        verbose = [python, "-m", "pytest", *args, "-v"]  # the header line says how each side was served
        for cmd, e in ((plain, env), (ours, env), (ours, env), (ours, late_env), (verbose, env), (verbose, env)):
            run_timed(cmd, cwd, e)  # unmeasured: pyc, caches, the index entries of both commands
        times: dict[str, list[float]] = {"plain": [], "early": [], "late": [], "floor": []}
        seen: dict[str, set] = {"plain": set(), "early": set(), "late": set()}
        for _ in range(pairs):
            for side, cmd, e in (("plain", plain, env), ("early", ours, env), ("late", ours, late_env)):
                t = run_timed(cmd, cwd, e)
                times[side].append(t.seconds)
                seen[side].add((t.code, counts(t.out)))
            times["floor"].append(run_timed([python, "-c", "pass"], cwd, env).seconds)
        how = {side: run_timed(verbose, cwd, e).out for side, e in (("early", env), ("late", late_env))}
        served_ok = EARLY in how["early"] and SERVED in how["late"] and EARLY not in how["late"]
        comparable = seen["plain"] == seen["early"] == seen["late"] and len(seen["plain"]) == 1 and served_ok
        row.update({k: v for k, v in times.items()}, counts=sorted(seen["plain"]), comparable=comparable,
                   ratio_early=statistics.median(times["plain"]) / statistics.median(times["early"]),
                   ratio_late=statistics.median(times["plain"]) / statistics.median(times["late"]),
                   early_over_floor=statistics.median(times["early"]) - statistics.median(times["floor"]))
        line = (f"{name:7} {scenario:8} plain {med(times['plain'])} | early {med(times['early'])} "
                f"{row['ratio_early']:.1f}x | late {med(times['late'])} {row['ratio_late']:.1f}x | "
                f"python -c pass {med(times['floor'])} | early - floor {row['early_over_floor']:.3f} s | "
                f"counts {sorted(seen['plain'])}")
        if not comparable:
            line += f" | NOT COMPARABLE: early {sorted(seen['early'])} late {sorted(seen['late'])} served_ok {served_ok}"
        print(line, flush=True)
        subprocess.run([python, "-m", "pytest", *args, "--daemon-stop"], cwd=cwd, env=env, capture_output=True)
    finally:
        stop_daemons(runtime)
    return row


def bench_pth(python: str, cwd: str, env: dict[str, str], pairs: int, row: dict) -> dict:
    """`python -c pass` with and without the .pth hook, alternating (the hook moved aside and back)."""
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pth = Path(site) / "pytest_fastcollect_early.pth"
    aside = pth.with_suffix(".pth-aside")
    if not pth.exists():
        raise SystemExit(f"{pth} is not installed")
    with_hook, without = [], []
    try:
        for _ in range(pairs * 5):
            with_hook.append(run_timed([python, "-c", "pass"], cwd, env).seconds)
            pth.rename(aside)
            without.append(run_timed([python, "-c", "pass"], cwd, env).seconds)
            aside.rename(pth)
    finally:
        if aside.exists():
            aside.rename(pth)
    diff = [a - b for a, b in zip(with_hook, without)]
    row.update(with_hook=with_hook, without=without, paired_diff_median=statistics.median(diff))
    print(f"plugins pth      python -c pass with the hook {med(with_hook)} | without {med(without)} | "
          f"paired difference median {statistics.median(diff) * 1000:+.2f} ms over {len(diff)} pairs", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=DEFAULT, help=f"suite:scenario,... (default {DEFAULT})")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="PYTHONDONTWRITEBYTECODE=1 (default: warm pyc)")
    parser.add_argument("--json", type=Path, default=None)
    ns = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {os.cpu_count()} cores | Python {platform.python_version()} | "
          f"pyc {'cold' if ns.cold else 'warm'} | {ns.pairs} alternating rounds", flush=True)
    rows = []
    for item in ns.scenarios.split(","):
        name, scenario = item.split(":")
        pairs = ns.pairs if name == "plugins" or scenario == "one" else max(3, ns.pairs // 3)
        rows.append(bench(name, scenario, pairs, ns.cold))
    if ns.json:
        ns.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
