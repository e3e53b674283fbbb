"""Benchmark runner: plain pytest (`-p no:fastcollect`) against pytest with the plugin, on generated and
real suites, as alternating runs in separate processes.

    python benchmarks/run.py [--suites gen-1k-light,gen-10k-light,click] [--scenarios collect,nodeid,k]
                             [--pairs 5] [--pyc warm|cold|both] [--out-dir benchmarks/results]

Suites: generated presets (gen-1k-light, gen-10k-light, gen-10k-heavy, gen-100k-light: benchmarks/generate.py,
written to $FASTCOLLECT_SUITES/generated/<preset>, run with a venv in $FASTCOLLECT_SUITES/generated/venv
holding the wheel from build/wheels, pytest 9.2.0 and pytest-xdist 3.8.0) and real suites (click, sympy,
pandas: benchmarks/suites.py).

Scenarios (all `-q`):
  collect   `--collect-only` of the whole suite
  nodeid    `--collect-only NODEID` of the first node ID a plain collect prints
  k         `--collect-only -k NAME` with that test's function name
  m         `--collect-only -m slow` (generated) or a marker the real suite uses (click: stress, sympy and
            pandas: slow); skipped when the unmeasured plain run selects no test
  run-small full run, only for suites of fewer than 2,000 selected tests
  n2        `-n 2 -k NAME` full run with pytest-xdist (each worker collects the whole suite, one test runs);
            skipped when xdist is not importable (xdist turns itself off under --collect-only)

pyc states: warm (PYTHONDONTWRITEBYTECODE unset; one unmeasured run per side first writes the pyc files and
fills the discovery cache) and cold (PYTHONDONTWRITEBYTECODE=1 and every __pycache__ under the suite's
tree removed before each run, since pytest and CPython read existing pyc files even when they may not write
them; the tree is the generated folder, click's sdist folder, or the installed sympy/pandas package folder;
pytest, the plugin and the stdlib keep their pyc files).
The plugin side always has a warm discovery cache (the unmeasured run fills it).

Times are wall-clock seconds of the whole child process; peak RSS is the child's ru_maxrss from os.wait4
(KiB on Linux; for xdist it is the largest of the controller and its reaped workers, not their sum).
Counts (selected/collected/deselected, or the outcomes of a run, and the exit code) are printed beside
every time; a row whose counts differ between the two sides, or between runs, is marked NOT COMPARABLE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402
import suites  # noqa: E402

GENERATED = suites.BASE / "generated"
GEN_PINS = ["pytest==9.2.0", "pytest-xdist==3.8.0"]
GEN_SUITES = {f"gen-{p}": p for p in generate.PRESETS}
REAL_MARKERS = {"click": "stress", "sympy": "slow", "pandas": "slow"}
SCENARIOS = ["collect", "nodeid", "k", "m", "run-small", "n2"]
SMALL_SUITE = 2000

COLLECTED = re.compile(r"(\d+)(?:/(\d+))? tests? collected(?: \((\d+) deselected\))?")
NO_TESTS = re.compile(r"no tests collected(?: \((\d+) deselected\))?")
OUTCOME = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?)")


@dataclass
class Target:
    """A suite ready to run: interpreter, folder, options, what selects the suite (positional args or
    --pyargs), folders whose __pycache__ a cold run removes, and whether it was generated."""

    name: str
    python: str
    cwd: str
    options: list[str]
    selection: list[str]
    pyc_roots: list[str]
    generated: bool


@dataclass
class Child:
    """One measured process: wall seconds, peak RSS in KiB, exit code, parsed counts."""

    seconds: float
    max_rss_kib: int
    exit_code: int
    counts: dict[str, int]
    failures: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One (suite, scenario, pyc state) comparison; times in seconds, RSS in KiB."""

    suite: str
    scenario: str
    pyc: str
    plain_seconds: list[float] = field(default_factory=list)
    plugin_seconds: list[float] = field(default_factory=list)
    plain_rss_kib: int = 0
    plugin_rss_kib: int = 0
    plain_counts: list[dict[str, int]] = field(default_factory=list)
    plugin_counts: list[dict[str, int]] = field(default_factory=list)
    comparable: bool = True
    failures: list[str] = field(default_factory=list)
    skipped: str = ""
    args: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- suites


def pip_install(python: str, *args: str) -> None:
    """pip install -q into the venv of `python`."""
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def generated_python() -> str:
    """The venv for generated suites (created and pinned on first use; the wheel is reinstalled each time)."""
    venv = GENERATED / "venv"
    python = venv / "bin" / "python"
    marker = venv / f".ready-{'-'.join(GEN_PINS)}"
    if not python.exists():
        GENERATED.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not marker.exists():
        pip_install(str(python), *GEN_PINS)
        marker.touch()
    suites.install_plugin(python)
    return str(python)


def package_dir(python: str, package: str) -> str:
    """Folder of an installed package, as seen by `python`."""
    code = f"import importlib.util, os; print(os.path.dirname(importlib.util.find_spec({package!r}).origin))"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def make_target(name: str, gen_python: Callable[[], str]) -> Target:
    """Prepare suite `name` (generate it, or install it with benchmarks/suites.py)."""
    if name in GEN_SUITES:
        root = GENERATED / GEN_SUITES[name]
        generate.generate(root, generate.spec_for(GEN_SUITES[name]))
        return Target(name, gen_python(), str(root), [], [], [str(root)], True)
    suite = suites.SUITES[name]()
    options, selection = list(suite.args), []
    if "--pyargs" in options:
        i = options.index("--pyargs")
        selection = options[i:i + 2]
        del options[i:i + 2]
        roots = [package_dir(suite.python, selection[1])]
    else:
        roots = [suite.cwd]
    return Target(name, suite.python, suite.cwd, options, selection, roots, False)


def versions(python: str) -> dict[str, str]:
    """Python, pytest, plugin and xdist versions in the venv of `python`."""
    code = ("import json, platform, importlib.metadata as m\n"
            "def v(n):\n  try: return m.version(n)\n  except m.PackageNotFoundError: return ''\n"
            "print(json.dumps({'python': platform.python_version(), 'pytest': v('pytest'),"
            " 'pytest-fastcollect': v('pytest-fastcollect'), 'pytest-xdist': v('pytest-xdist')}))")
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


# ---------------------------------------------------------------- processes


def parse_counts(output: str) -> dict[str, int]:
    """Counts from the summary line of `pytest -q` output: selected/collected/deselected for
    --collect-only, outcomes (passed, failed, ...) for a run."""
    lines = [ln.strip("= ").strip() for ln in output.splitlines() if ln.strip()]
    for line in reversed(lines):
        m = COLLECTED.search(line)
        if m:
            selected = int(m.group(1))
            counts = {"selected": selected, "collected": int(m.group(2) or selected),
                      "deselected": int(m.group(3) or 0)}
            counts.update(outcomes(line, skip={"deselected"}))
            return counts
        m = NO_TESTS.search(line)
        if m:
            deselected = int(m.group(1) or 0)
            return {"selected": 0, "collected": deselected, "deselected": deselected} | outcomes(line, {"deselected"})
        if re.search(r" in [\d.]+s", line) and OUTCOME.search(line):
            return outcomes(line, skip=set())
    return {}


def outcomes(line: str, skip: set[str]) -> dict[str, int]:
    """`N word` pairs of a summary line (errors/warnings normalised to singular)."""
    found: dict[str, int] = {}
    for num, word in OUTCOME.findall(line):
        word = word.rstrip("s") if word in ("errors", "warnings") else word
        if word not in skip:
            found[word] = int(num)
    return found


def run_child(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[Child, str]:
    """Run one process; wall time in seconds (perf_counter around spawn..reap), peak RSS from os.wait4."""
    with tempfile.TemporaryFile(mode="w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    failures = [ln.strip() for ln in text.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    return Child(seconds, int(usage.ru_maxrss), proc.returncode, parse_counts(text), failures), text


def pytest_cmd(target: Target, scenario_args: list[str], plugin: bool, keep_selection: bool = True) -> list[str]:
    """The pytest command line of one side."""
    cmd = [target.python, "-m", "pytest", *target.options, *scenario_args]
    if keep_selection:
        cmd += target.selection
    if not plugin:
        cmd += ["-p", "no:fastcollect"]
    else:
        cmd.append("--no-fastcollect-auto-daemon")  # this mode is the plugin in-process (daemon.py measures the daemon)
    return cmd


def environment(cold: bool) -> dict[str, str]:
    """The child environment of a pyc state."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def remove_pycache(roots: list[str]) -> None:
    """Delete every __pycache__ folder under roots (cold pyc state)."""
    for root in roots:
        for folder in Path(root).rglob("__pycache__"):
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- scenarios


@dataclass
class Probe:
    """What a plain, unmeasured collect of the suite showed: first node ID, its function name, selected
    count, whether xdist is importable."""

    nodeid: str
    function: str
    selected: int
    xdist: bool


def probe(target: Target) -> Probe:
    """Collect the suite once (plain, unmeasured) and look up xdist."""
    child, text = run_child(pytest_cmd(target, ["--collect-only", "-q"], plugin=False), target.cwd, environment(False))
    ids = [ln.strip() for ln in text.splitlines() if "::" in ln and not ln.startswith(" ")]
    if not ids:
        raise SystemExit(f"{target.name}: no node IDs in a plain collect (exit {child.exit_code}):\n{text[-2000:]}")
    function = re.sub(r"\[.*\]$", "", ids[0].split("::")[-1])
    has_xdist = subprocess.run([target.python, "-c", "import xdist"], capture_output=True).returncode == 0
    return Probe(ids[0], function, child.counts.get("selected", 0), has_xdist)


def scenario_args(name: str, target: Target, info: Probe) -> tuple[Optional[list[str]], bool, str]:
    """(pytest args, keep the suite's selection?, reason when skipped) of a scenario."""
    if name == "collect":
        return ["--collect-only", "-q"], True, ""
    if name == "nodeid":
        return ["--collect-only", "-q", info.nodeid], False, ""
    if name == "k":
        return ["--collect-only", "-q", "-k", info.function], True, ""
    if name == "m":
        marker = "slow" if target.generated else REAL_MARKERS.get(target.name, "")
        if not marker:
            return None, True, "no marker known for this suite"
        return ["--collect-only", "-q", "-m", marker], True, ""
    if name == "run-small":
        if info.selected >= SMALL_SUITE:
            return None, True, f"{info.selected} selected tests (run-small is for < {SMALL_SUITE})"
        return ["-q"], True, ""
    if name == "n2":
        if not info.xdist:
            return None, True, "pytest-xdist not importable in the suite's venv"
        return ["-q", "-n", "2", "-k", info.function], True, ""
    raise ValueError(name)


def measure(target: Target, scenario: str, cold: bool, pairs: int, info: Probe) -> Row:
    """Alternating pairs (plain first, then plugin) after one unmeasured run of each side."""
    row = Row(target.name, scenario, "cold" if cold else "warm")
    args, keep, reason = scenario_args(scenario, target, info)
    if args is None:
        row.skipped = reason
        return row
    row.args = args
    env = environment(cold)

    def one(plugin: bool) -> Child:
        if cold:
            remove_pycache(target.pyc_roots)
        child, _ = run_child(pytest_cmd(target, args, plugin, keep), target.cwd, env)
        return child

    one(True)  # fills the discovery cache (and, warm, the pyc files)
    first = one(False)
    if scenario == "m" and not first.counts.get("selected"):
        row.skipped = f"`{' '.join(args)}` selects no test ({first.counts}, exit {first.exit_code})"
        return row
    for _ in range(pairs):
        for plugin in (False, True):
            child = one(plugin)
            side = "plugin" if plugin else "plain"
            getattr(row, f"{side}_seconds").append(child.seconds)
            getattr(row, f"{side}_counts").append({**child.counts, "exit": child.exit_code})
            setattr(row, f"{side}_rss_kib", max(getattr(row, f"{side}_rss_kib"), child.max_rss_kib))
            row.failures += [f"{side}: {f}" for f in child.failures if f"{side}: {f}" not in row.failures][:10]
    every = {json.dumps(c, sort_keys=True) for c in row.plain_counts + row.plugin_counts}
    row.comparable = len(every) == 1
    return row


# ---------------------------------------------------------------- report


def machine() -> dict[str, object]:
    """Cores, memory (GiB, from /proc/meminfo), platform and harness Python."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "platform": platform.platform(),
            "harness_python": platform.python_version()}


def stats(ts: list[float]) -> str:
    """'median (min–max)' in seconds."""
    if not ts:
        return ""
    return f"{statistics.median(ts):.3f} ({min(ts):.3f}–{max(ts):.3f})"


def counts_text(counts: list[dict[str, int]]) -> str:
    """The distinct counts of one side, compactly."""
    distinct = []
    for c in counts:
        text = ", ".join(f"{k} {v}" for k, v in c.items())
        if text not in distinct:
            distinct.append(text)
    return " | ".join(distinct)


def ratio(row: Row) -> Optional[float]:
    """plain median / plugin median (above 1: the plugin is faster)."""
    if not row.plain_seconds or not row.plugin_seconds:
        return None
    return statistics.median(row.plain_seconds) / statistics.median(row.plugin_seconds)


def markdown(rows: list[Row], meta: dict[str, object]) -> str:
    """The Markdown report: header lines, then one table row per comparison."""
    m = meta["machine"]
    lines = [f"# pytest-fastcollect benchmark, {meta['date']}", "",
             f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}; harness Python "
             f"{m['harness_python']}. Pairs: {meta['pairs']} alternating (plain, plugin), after one unmeasured "
             f"run of each side.", ""]
    for suite, v in meta["versions"].items():
        lines.append(f"- {suite}: Python {v['python']}, pytest {v['pytest']}, pytest-fastcollect "
                     f"{v['pytest-fastcollect']}, pytest-xdist {v['pytest-xdist'] or 'not installed'}")
    lines += ["", "Times: wall seconds, median (min–max). Ratio: plain median / plugin median (above 1.0 = plugin "
              "faster). RSS: peak of the child, MiB.", "",
              "| suite | scenario | pyc | plain s | plugin s | plain/plugin | counts plain | counts plugin "
              "| RSS plain | RSS plugin | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.suite} | {r.scenario} | {r.pyc} | | | | | | | | skipped: {r.skipped} |")
            continue
        q = ratio(r)
        note = "" if r.comparable else "**NOT COMPARABLE**"
        if r.failures:
            note += f" {len(r.failures)} distinct FAILED/ERROR lines, first: `{r.failures[0][:120]}`"
        lines.append(f"| {r.suite} | {r.scenario} | {r.pyc} | {stats(r.plain_seconds)} | {stats(r.plugin_seconds)} "
                     f"| {q:.3f} | {counts_text(r.plain_counts)} | {counts_text(r.plugin_counts)} "
                     f"| {r.plain_rss_kib / 1024:.0f} | {r.plugin_rss_kib / 1024:.0f} | {note} |")
    return "\n".join(lines) + "\n"


def charts(rows: list[Row], out: Path, stem: str) -> list[str]:
    """PNG charts if matplotlib is importable: median time per (suite, scenario, pyc), and collection time
    against suite size for the gen-*-light suites. Returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    done = [r for r in rows if not r.skipped]
    written = []
    if done:
        fig, ax = plt.subplots(figsize=(max(6, len(done) * 0.6), 4))
        xs = range(len(done))
        ax.bar([x - 0.2 for x in xs], [statistics.median(r.plain_seconds) for r in done], 0.4, label="plain")
        ax.bar([x + 0.2 for x in xs], [statistics.median(r.plugin_seconds) for r in done], 0.4, label="plugin")
        ax.set_xticks(list(xs), [f"{r.suite}\n{r.scenario} {r.pyc}" for r in done], fontsize=6, rotation=45)
        ax.set_ylabel("median wall time (s)")
        ax.legend()
        fig.tight_layout()
        path = out / f"{stem}-scenarios.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(str(path))
    sizes = {"gen-1k-light": 1_000, "gen-10k-light": 10_000, "gen-100k-light": 100_000}
    scaling = [r for r in done if r.suite in sizes and r.scenario == "collect"]
    if len({r.suite for r in scaling}) >= 2:
        fig, ax = plt.subplots(figsize=(6, 4))
        for pyc in ("warm", "cold"):
            pts = sorted((sizes[r.suite], r) for r in scaling if r.pyc == pyc)
            if pts:
                ax.plot([n for n, _ in pts], [statistics.median(r.plain_seconds) for _, r in pts], "o-",
                        label=f"plain, {pyc} pyc")
                ax.plot([n for n, _ in pts], [statistics.median(r.plugin_seconds) for _, r in pts], "s--",
                        label=f"plugin, {pyc} pyc")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tests in suite")
        ax.set_ylabel("median --collect-only wall time (s)")
        ax.legend()
        fig.tight_layout()
        path = out / f"{stem}-scaling.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(str(path))
    return written


# ---------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="gen-1k-light,gen-10k-light,gen-10k-heavy,gen-100k-light,click,sympy,pandas")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--pairs", type=int, default=5, help="alternating (plain, plugin) pairs per row")
    ap.add_argument("--pyc", choices=["warm", "cold", "both"], default="both")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ns = ap.parse_args(argv)
    ns.suites = [s for s in ns.suites.split(",") if s]
    ns.scenarios = [s for s in ns.scenarios.split(",") if s]
    for s in ns.suites:
        if s not in GEN_SUITES and s not in suites.SUITES:
            ap.error(f"unknown suite {s!r} (known: {', '.join([*GEN_SUITES, *suites.SUITES])})")
    for s in ns.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    return ns


def main(argv: Optional[list[str]] = None) -> int:
    ns = parse_args(argv)
    gen_cache: dict[str, str] = {}

    def gen_python() -> str:
        if "python" not in gen_cache:
            gen_cache["python"] = generated_python()
        return gen_cache["python"]

    states = {"warm": [False], "cold": [True], "both": [False, True]}[ns.pyc]
    now = dt.datetime.now()
    meta: dict[str, object] = {"date": now.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "pairs": ns.pairs,
                               "versions": {}}
    rows: list[Row] = []
    for name in ns.suites:
        target = make_target(name, gen_python)
        meta["versions"][name] = versions(target.python)
        info = probe(target)
        print(f"== {name}: {info.selected} selected; first node ID {info.nodeid}", flush=True)
        for scenario in ns.scenarios:
            for cold in states:
                row = measure(target, scenario, cold, ns.pairs, info)
                rows.append(row)
                print(f"   {scenario:9} {row.pyc}: " + (f"skipped ({row.skipped})" if row.skipped else
                      f"plain {stats(row.plain_seconds)} s, plugin {stats(row.plugin_seconds)} s, "
                      f"plain/plugin {ratio(row):.3f}" + ("" if row.comparable else " NOT COMPARABLE")), flush=True)
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y-%m-%d_%H%M%S")
    report = markdown(rows, meta)
    meta["charts"] = charts(rows, ns.out_dir, stem)
    (ns.out_dir / f"{stem}.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=1))
    (ns.out_dir / f"{stem}.md").write_text(report)
    print()
    print(report)
    print(f"written: {ns.out_dir / stem}.json, .md" + "".join(f", {c}" for c in meta["charts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
