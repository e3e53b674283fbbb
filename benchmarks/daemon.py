"""Warm-daemon benchmark (issue: the warm daemon): plain pytest against the same command served by a warm
daemon, as alternating runs in one process tree, with counts beside every time.

    python benchmarks/daemon.py [--suites sympy,pandas] [--pairs 5] [--json FILE]

Per scenario, a daemon is started with `--daemon-start` and the scenario's arguments (a daemon serves the
runs with its initial paths; it imports their test files), in a socket folder of its own. Then, for each scenario, `--pairs` alternating pairs of
  plain:  python -m pytest ARGS -p no:fastcollect
  daemon: python -m pytest ARGS --fastcollect-auto-daemon      (must be served: checked per run)
plus, for the one-test scenario, `python -m pytest --version` (the floor every pytest start pays: interpreter,
pytest and plugin imports). pyc state: warm (PYTHONDONTWRITEBYTECODE unset; one unmeasured run per side first).
Wall-clock seconds of the whole client process; peak RSS of the plain process from os.wait4, and the RSS of
the daemon's template from --daemon-status (a run child shares its pages copy-on-write), and the wall time of
`--daemon-start` (the warm-up). A row whose counts
differ between plain and daemon is marked NOT COMPARABLE.

Scenarios: `one` (one test by node ID, a full run of it), `collect` (`--collect-only -q` of the whole suite),
`frame` (`--collect-only -q` of pandas/tests/frame; pandas' own `--no-strict-data-files` option is
registered by a conftest that a `--pyargs pandas` run does not load first, so its whole-suite collect is a
usage error on both sides). Default: sympy one,collect; pandas one,frame.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402

ONE_TEST = {
    "sympy": "core/tests/test_basic.py::test__aresame",
    "pandas": "tests/frame/test_api.py::TestDataFrameMisc::test_getitem_pop_assign_name",
}
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|deselected|tests? collected)")


def counts(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    last = re.sub(r"\s+in\s+[0-9.]+s.*$", "", last).strip("= ")
    return last


@dataclass
class Timed:
    """One measured process: wall seconds, CPU seconds (user + sys), peak RSS KiB, exit code, output."""

    seconds: float
    cpu: float
    maxrss_kib: int
    code: int
    out: str


def run_timed(cmd: list[str], cwd: str, env: dict[str, str]) -> Timed:
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        out.seek(0)
        return Timed(seconds, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss),
                     os.waitstatus_to_exitcode(status), out.read())


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int, int, str]:
    """(seconds, peak RSS KiB, exit code, output) of one process."""
    t = run_timed(cmd, cwd, env)
    return t.seconds, t.maxrss_kib, t.code, t.out


def status(python: str, cwd: str, args: list[str], env: dict[str, str]) -> str:
    return subprocess.run([python, "-m", "pytest", *args, "--daemon-status"], cwd=cwd, env=env,
                          capture_output=True, text=True).stdout


def served_count(text: str) -> int:
    m = re.search(r"(\d+) served", text)
    return int(m.group(1)) if m else -1


def rss_mib(text: str) -> float | None:
    m = re.search(r"RSS\s+([0-9.]+) MiB", text)
    return float(m.group(1)) if m else None


def fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f})"


def stop_daemons(runtime: str) -> None:
    """SIGTERM every daemon whose pid file is in the socket folder under `runtime` (XDG_RUNTIME_DIR)."""
    for pid_file in Path(runtime, "pytest-fastcollect").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), 15)
        except (OSError, ValueError):
            pass


def bench_suite(name: str, pairs: int, wanted: list[str]) -> dict:
    suite = getattr(suites, name)()
    python, cwd = suite.python, suite.cwd
    base = [a for a in suite.args]
    pkg_dir = subprocess.run([python, "-c", f"import {name}, os; print(os.path.dirname({name}.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    runtime = tempfile.mkdtemp(prefix="fcb")
    os.chmod(runtime, 0o700)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("CI", None)
    env["XDG_RUNTIME_DIR"] = runtime
    result: dict = {"suite": name, "scenarios": []}
    # --pyargs ARGS hold the package name; a node ID is given as a path, so drop the package positional
    options = [a for a in base if a not in (name, "--pyargs")]
    # --rootdir: the rootdir (part of a daemon's key) of the --pyargs run, so the suite's daemon serves runs
    # given by path
    scenarios = {
        "one": [*options, f"--rootdir={cwd}", os.path.join(pkg_dir, ONE_TEST[name]), "-q"],
        "collect": [*base, "--collect-only", "-q"],
        "frame": [*options, f"--rootdir={cwd}", os.path.join(pkg_dir, "tests", "frame"), "--collect-only", "-q"],
    }
    try:
        for scenario, args in scenarios.items():
            if scenario not in wanted:
                continue
            # a daemon serves the runs with its initial paths: one per scenario, warmed with its arguments
            t0 = time.perf_counter()
            started = subprocess.run([python, "-m", "pytest", *args, "--daemon-start"], cwd=cwd, env=env,
                                     capture_output=True, text=True)
            warm_wall = time.perf_counter() - t0
            if started.returncode != 0:
                raise SystemExit(f"{name}: --daemon-start failed:\n{started.stdout}\n{started.stderr}")
            plain_cmd = [python, "-m", "pytest", *args, "-p", "no:fastcollect"]
            daemon_cmd = [python, "-m", "pytest", *args, "--fastcollect-auto-daemon"]
            timed(plain_cmd, cwd, env)  # unmeasured: pyc written, caches warm
            timed(daemon_cmd, cwd, env)
            plain_t, daemon_t, version_t, rss = [], [], [], []
            plain_counts, daemon_counts = set(), set()
            served_before = served_count(status(python, cwd, args, env))
            for _ in range(pairs):
                s, r, code, out = timed(plain_cmd, cwd, env)
                plain_t.append(s)
                rss.append(r)
                plain_counts.add((code, counts(out)))
                s, _, code, out = timed(daemon_cmd, cwd, env)
                daemon_t.append(s)
                daemon_counts.add((code, counts(out)))
                if scenario == "one":
                    version_t.append(timed([python, "-m", "pytest", "--version"], cwd, env)[0])
            served_after = served_count(status(python, cwd, args, env))
            # equal counts of a run that failed to start (usage error, internal error) measure nothing
            comparable = plain_counts == daemon_counts and len(plain_counts) == 1 and all(
                code in (0, 1, 5) for code, _ in plain_counts
            )
            row = {
                "scenario": scenario,
                "args": args,
                "plain": plain_t,
                "daemon": daemon_t,
                "version": version_t,
                "plain_peak_rss_mib": round(max(rss) / 1024, 1),
                "ratio": statistics.median(plain_t) / statistics.median(daemon_t),
                "counts_plain": sorted(plain_counts),
                "counts_daemon": sorted(daemon_counts),
                "served": served_after - served_before,
                "warm_up_wall_seconds": round(warm_wall, 2),
                "template_rss_mib": rss_mib(status(python, cwd, args, env)),
                "comparable": comparable and served_after - served_before == pairs,
            }
            result["scenarios"].append(row)
            line = (f"{name:6} {scenario:8} plain {fmt(plain_t)} | daemon {fmt(daemon_t)} | ratio "
                    f"{row['ratio']:.2f}x | served {row['served']}/{pairs} | counts {sorted(plain_counts)}")
            if version_t:
                line += f" | pytest --version median {statistics.median(version_t):.3f} s"
            if not row["comparable"]:
                line += f" | NOT COMPARABLE: daemon counts {sorted(daemon_counts)}"
            line += (f" | warm-up {warm_wall:.1f} s, template RSS {row['template_rss_mib']} MiB vs plain peak "
                     f"{row['plain_peak_rss_mib']} MiB")
            print(line, flush=True)
            subprocess.run([python, "-m", "pytest", *args, "--daemon-stop"], cwd=cwd, env=env, capture_output=True)
    finally:
        stop_daemons(runtime)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="sympy,pandas")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--scenarios", default="sympy:one,collect;pandas:one,frame",
        help="per suite, which scenarios (default: sympy:one,collect;pandas:one,frame)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    ns = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {os.cpu_count()} cores | Python {platform.python_version()} | "
          f"pyc warm | {ns.pairs} alternating pairs", flush=True)
    wanted = {part.split(":")[0]: part.split(":")[1].split(",") for part in ns.scenarios.split(";") if ":" in part}
    results = [bench_suite(name, ns.pairs, wanted.get(name, ["one", "collect"])) for name in ns.suites.split(",") if name]
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
