"""Benchmark runner: plain pytest (`-p no:fastcollect`) against the plugin's modes and the competitors, on
generated and real suites, as alternating runs in separate processes of one process tree.

    python benchmarks/run.py [--suites gen-1k-light,click] [--scenarios collect,k,edit] [--modes plain,warm-cache]
                             [--pairs 5] [--pyc warm|cold|both] [--out-dir benchmarks/results] [--docs]

`--docs` also rewrites the generated part of docs/benchmarks.md and its charts in docs/img/ (one command
regenerates them; the command line used is written above the tables).

Suites: generated presets (gen-{1k,10k,100k}-{light,heavy}: benchmarks/generate.py,
written to $FASTCOLLECT_SUITES/generated/<preset>, run with a venv in $FASTCOLLECT_SUITES/generated/venv
holding the wheel from build/wheels, pytest 9.2.0 and pytest-xdist 3.8.0) and real suites (click, attrs,
sympy, pandas: benchmarks/suites.py).

Modes (benchmarks/modes.py): plain, cold-cache, warm-cache, daemon, rust-0.5.2, hot-reloading.

Scenarios (all `-q`):
  collect   `--collect-only` of the whole suite
  nodeid    `--collect-only NODEID` of the first node ID a plain collect prints
  k         `--collect-only -k NAME` with that test's function name
  m         `--collect-only -m MARKER`: `slow` (generated) or a marker the real suite uses (click: stress,
            sympy and pandas: slow); skipped when the unmeasured plain run selects no test
  run-small full run, only for suites of fewer than 2,000 selected tests
  edit      the edit-run loop: before every run one line is appended to the first node ID's test file (a
            comment, a new content hash each time; the file is restored after the row), then `-k NAME` runs
  n2        `-n 2 -k NAME` full run with pytest-xdist (each worker collects the whole suite, one test runs);
            skipped when xdist is not importable (xdist turns itself off under --collect-only)

pyc states: warm (PYTHONDONTWRITEBYTECODE unset; the unmeasured runs write the pyc files) and cold
(PYTHONDONTWRITEBYTECODE=1 and every __pycache__ under the suite's tree removed before each run, since pytest
and CPython read existing pyc files even when they may not write them; the tree is the generated folder,
the sdist folder, or the installed sympy/pandas package folder; pytest, the plugin and the stdlib keep theirs).

Per row: every mode is set up (a daemon started, a port chosen), runs its unmeasured runs, then `--pairs`
rounds run every mode once in the order given (plain first). Times are wall-clock seconds of the whole child
process; peak RSS is the child's ru_maxrss from os.wait4 (KiB on Linux; for xdist the largest of the controller
and its reaped workers; a daemon run's client only). Counts (selected/collected/deselected, or the outcomes of
a run, and the exit code) are kept per run; a mode whose counts differ from plain's, or between its runs,
is marked NOT COMPARABLE, and a daemon mode whose runs were not all served is marked as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
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
import modes  # noqa: E402
import report  # noqa: E402
import suites  # noqa: E402

GENERATED = suites.BASE / "generated"
GEN_PINS = ["pytest==9.2.0", "pytest-xdist==3.8.0"]
GEN_SUITES = {f"gen-{p}": p for p in generate.PRESETS}
REAL_MARKERS = {"click": "stress", "sympy": "slow", "pandas": "slow"}
SCENARIOS = ["collect", "nodeid", "k", "m", "run-small", "edit", "n2"]
#: `--plan docs`: what docs/benchmarks.md shows, per suite (scenarios, pyc states, modes); sized to run in about
#: an hour on 2 cores. Real suites are measured warm here (sympy's cold plain collect alone takes ~130 s a run;
#: cold figures for sympy and pandas come from benchmarks/selection.py); the 100k suite leaves out
#: hot-reloading (its runs there are several times plain's).
PLANS = {
    "docs": [
        ("gen-1k-light", SCENARIOS, "both", None),
        ("gen-10k-light", ["collect", "k", "edit", "n2"], "both", None),
        ("gen-100k-light", ["collect"], "warm", ["plain", "cold-cache", "warm-cache", "daemon", "rust-0.5.2"]),
        ("click", ["collect", "k", "m", "run-small", "edit", "n2"], "warm", None),
        ("attrs", ["k", "run-small", "edit"], "warm", None),
        ("sympy", ["collect", "k", "edit", "n2"], "warm", None),
    ],
}
#: a run slower than this many times plain's unmeasured run (and 60 s) is killed and its mode dropped from the row
TIMEOUT_FACTOR = 20
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
    pins: list[str] = field(default_factory=list)


@dataclass
class Child:
    """One measured process: wall seconds, peak RSS in KiB, exit code, parsed counts."""

    seconds: float
    max_rss_kib: int
    exit_code: int
    counts: dict[str, int]
    failures: list[str] = field(default_factory=list)


@dataclass
class Side:
    """One mode's runs in a row: seconds, counts (with "exit") per run, peak RSS KiB, FAILED/ERROR lines,
    and a note when it is not comparable or could not run."""

    mode: str
    seconds: list[float] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)
    rss_kib: int = 0
    failures: list[str] = field(default_factory=list)
    note: str = ""
    comparable: bool = True


@dataclass
class Row:
    """One (suite, scenario, pyc state) comparison of every mode against plain."""

    suite: str
    scenario: str
    pyc: str
    args: list[str] = field(default_factory=list)
    skipped: str = ""
    sides: dict[str, Side] = field(default_factory=dict)


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
        return Target(name, gen_python(), str(root), [], [], [str(root)], True, list(GEN_PINS))
    suite = suites.SUITES[name]()
    options, selection = list(suite.args), []
    if "--pyargs" in options:
        i = options.index("--pyargs")
        selection = options[i:i + 2]
        del options[i:i + 2]
        roots = [package_dir(suite.python, selection[1])]
    else:
        roots = [suite.cwd]
    return Target(name, suite.python, suite.cwd, options, selection, roots, False, [suites.PYTEST, *suites.PINS[name]])


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


def run_child(cmd: list[str], cwd: str, env: dict[str, str], timeout: Optional[float] = None) -> tuple[Child, str]:
    """Run one process; wall time in seconds (perf_counter around spawn..reap), peak RSS from os.wait4.
    After `timeout` seconds its process group is killed (exit code -9, counts empty)."""
    import threading

    with tempfile.TemporaryFile(mode="w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timer = None
        if timeout:
            timer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    failures = [ln.strip() for ln in text.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    counts = parse_counts(text)
    if "-n" in cmd:  # xdist prints this even with -q: a side that bypasses the workers shows it in its counts
        counts["xdist nodes"] = int("bringing up nodes" in text)
    return Child(seconds, int(usage.ru_maxrss), proc.returncode, counts, failures), text


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


def pytest_cmd(python: str, target: Target, scenario_args: list[str], extra: list[str], keep_selection: bool = True
               ) -> list[str]:
    """The pytest command line of one mode: the suite's options, the scenario's arguments, the suite's
    selection (unless the scenario names a node ID), then the mode's own arguments."""
    cmd = [python, "-m", "pytest", *target.options, *scenario_args]
    if keep_selection:
        cmd += target.selection
    return cmd + extra


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
    count, whether xdist is importable, and the collect's wall seconds."""

    nodeid: str
    function: str
    selected: int
    xdist: bool
    seconds: float


def probe(target: Target) -> Probe:
    """Collect the suite once (plain, unmeasured) and look up xdist."""
    cmd = pytest_cmd(target.python, target, ["--collect-only", "-q"], ["-p", "no:fastcollect"])
    child, text = run_child(cmd, target.cwd, environment(False))
    ids = [ln.strip() for ln in text.splitlines() if "::" in ln and not ln.startswith(" ")]
    if not ids:
        raise SystemExit(f"{target.name}: no node IDs in a plain collect (exit {child.exit_code}):\n{text[-2000:]}")
    function = re.sub(r"\[.*\]$", "", ids[0].split("::")[-1])
    has_xdist = subprocess.run([target.python, "-c", "import xdist"], capture_output=True).returncode == 0
    return Probe(ids[0], function, child.counts.get("selected", 0), has_xdist, child.seconds)


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
    if name == "edit":
        return ["-q", "-k", info.function], True, ""
    if name == "n2":
        if not info.xdist:
            return None, True, "pytest-xdist not importable in the suite's venv"
        return ["-q", "-n", "2", "-k", info.function], True, ""
    raise ValueError(name)


def node_file(target: Target, nodeid: str) -> Path:
    """The test file of `nodeid` (relative to the suite's folder, or, for an installed package, to the
    folder above it)."""
    rel = nodeid.split("::")[0]
    for base in [target.cwd, *(str(Path(r).parent) for r in target.pyc_roots)]:
        candidate = Path(base) / rel
        if candidate.is_file():
            return candidate
    parts = Path(rel).parts
    for root in target.pyc_roots:
        name = Path(root).name
        if name in parts:
            candidate = Path(root).joinpath(*parts[parts.index(name) + 1:])
            if candidate.is_file():
                return candidate
    raise SystemExit(f"{target.name}: cannot find the file of {nodeid}")


class Editor:
    """The edit-run loop's edits: each `edit()` appends one more comment line to `path` (new size, mtime and
    content hash); `restore()` writes the original bytes back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_bytes()
        self.count = 0

    def edit(self) -> None:
        self.count += 1
        with open(self.path, "ab") as fh:
            fh.write(f"\n# benchmarks/run.py edit {self.count}\n".encode())

    def restore(self) -> None:
        self.path.write_bytes(self.original)


def measure(target: Target, scenario: str, cold: bool, pairs: int, info: Probe, wanted: list[str]) -> Row:
    """One row: every mode in `wanted` set up, run unmeasured, then `pairs` rounds of one run per mode."""
    from contextlib import ExitStack

    row = Row(target.name, scenario, "cold" if cold else "warm")
    args, keep, reason = scenario_args(scenario, target, info)
    if args is None:
        row.skipped = reason
        return row
    row.args = args
    base_env = environment(cold)
    # one socket folder for every mode of the row: the environment is part of the -k/-m records' key, and a
    # user's XDG_RUNTIME_DIR is the same for runs with and without the daemon
    runtime = tempfile.mkdtemp(prefix="fcbench")
    os.chmod(runtime, 0o700)
    base_env["XDG_RUNTIME_DIR"] = runtime
    timeout = max(60.0, TIMEOUT_FACTOR * info.seconds * (3 if cold else 1))
    editor = Editor(node_file(target, info.nodeid)) if scenario == "edit" else None
    row_args = [*target.options, *args, *(target.selection if keep else [])]
    with ExitStack() as stack:
        if editor:
            stack.callback(editor.restore)
        ready: dict[str, modes.Invocation] = {}
        for mode in wanted:
            side = row.sides[mode] = Side(mode)
            try:
                competitor = (modes.competitor_python(target.name, mode, target.pins)
                              if mode in modes.COMPETITORS else None)
                ready[mode] = stack.enter_context(
                    modes.invocation(mode, target.python, competitor, target.cwd, row_args, base_env))
            except (RuntimeError, subprocess.SubprocessError) as exc:
                side.note = f"could not start: {exc}"[:300]
                side.comparable = False

        def one(mode: str) -> Optional[Child]:
            inv = ready[mode]
            env = {k: v for k, v in base_env.items() if k not in inv.unset} | inv.env
            if cold:
                remove_pycache(target.pyc_roots)
            if editor:
                editor.edit()
            child, text = run_child(pytest_cmd(inv.python, target, args, inv.extra, keep), target.cwd, env, timeout)
            if child.exit_code == -9:
                side = row.sides[mode]
                side.note = f"killed after {timeout:.0f} s (timeout); last output: {text[-200:]!r}"
                side.comparable = False
                del ready[mode]
                return None
            return child

        served_before: dict[str, int] = {}
        for mode in list(ready):
            for _ in range(ready[mode].warmups):
                if mode in ready:
                    one(mode)
            if mode in ready and ready[mode].served:
                served_before[mode] = ready[mode].served()
        plain = row.sides.get("plain")
        if scenario == "m" and plain is not None and "plain" in ready:
            first = one("plain")
            if first is not None and not first.counts.get("selected"):
                row.skipped = f"`{' '.join(args)}` selects no test ({first.counts}, exit {first.exit_code})"
                row.sides = {}
                return row
        for _ in range(pairs):
            for mode in wanted:
                if mode not in ready:
                    continue
                child = one(mode)
                if child is None:
                    continue
                side = row.sides[mode]
                side.seconds.append(child.seconds)
                side.counts.append({**child.counts, "exit": child.exit_code})
                side.rss_kib = max(side.rss_kib, child.max_rss_kib)
                side.failures += [f for f in child.failures if f not in side.failures][:10]
        # a served `-n K` run is K + 1 requests: the run (the xdist controller) and its K warm workers
        per_run = 1 + (int(args[args.index("-n") + 1]) if "-n" in args else 0)
        for mode, before in served_before.items():
            if mode in ready and ready[mode].served:
                served = ready[mode].served() - before
                measured = len(row.sides[mode].seconds)
                if served != measured * per_run:
                    row.sides[mode].note = (f"served {served} requests for {measured} runs, {measured * per_run} "
                                            f"expected ({per_run} per run: the run and its xdist workers)")
                    row.sides[mode].comparable = False
    judge(row)
    return row


def judge(row: Row) -> None:
    """Mark every side whose counts differ from plain's, or between its own runs, as not comparable."""
    plain = row.sides.get("plain")
    reference = {json.dumps(c, sort_keys=True) for c in plain.counts} if plain else set()
    for side in row.sides.values():
        mine = {json.dumps(c, sort_keys=True) for c in side.counts}
        if not side.seconds:
            side.comparable = False
            side.note = side.note or "no measured run"
        elif len(mine) != 1 or (reference and mine != reference) or len(reference) > 1:
            side.comparable = False
            if not side.note:
                side.note = "counts differ from plain's" if side.mode != "plain" else "counts differ between runs"


# ---------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="", help="comma-separated (default: all); with --plan: only these of the plan")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--modes", default=",".join(modes.MODES), help="plain is always measured (first)")
    ap.add_argument("--pairs", type=int, default=5, help="rounds of one run per mode (at least 5 for published figures)")
    ap.add_argument("--pyc", choices=["warm", "cold", "both"], default="both")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument("--docs", action="store_true", help="also rewrite docs/benchmarks.md's generated part and docs/img/")
    ap.add_argument("--from-json", type=Path, help="measure nothing: render the report (and with --docs the docs "
                    "page and charts) again from a results file this script wrote")
    ap.add_argument("--plan", choices=sorted(PLANS), help="a fixed plan (suites, scenarios, pyc states, modes per "
                    "suite) instead of --scenarios/--pyc/--modes")
    ap.add_argument("--merge", type=Path, action="append", default=[], help="with --from-json: rows of this results "
                    "file replace the rows of the same suite, scenario and pyc state (repeatable); the merged "
                    "results are written beside the last one as STEM-merged.json")
    ns = ap.parse_args(argv)
    explicit_suites = bool(ns.suites)
    ns.suites = [s for s in ns.suites.split(",") if s] or [*GEN_SUITES, *suites.SUITES]
    ns.scenarios = [s for s in ns.scenarios.split(",") if s]
    ns.modes = ["plain", *[m for m in ns.modes.split(",") if m and m != "plain"]]
    for s in ns.suites:
        if s not in GEN_SUITES and s not in suites.SUITES:
            ap.error(f"unknown suite {s!r} (known: {', '.join([*GEN_SUITES, *suites.SUITES])})")
    for s in ns.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    for m in ns.modes:
        if m not in modes.MODES:
            ap.error(f"unknown mode {m!r} (known: {', '.join(modes.MODES)})")
    states = {"warm": [False], "cold": [True], "both": [False, True]}
    if ns.plan:
        ns.work = [(suite, list(scen), states[pyc], list(mode_list or modes.MODES))
                   for suite, scen, pyc, mode_list in PLANS[ns.plan] if not explicit_suites or suite in ns.suites]
    else:
        ns.work = [(suite, ns.scenarios, states[ns.pyc], ns.modes) for suite in ns.suites]
    return ns


def load_results(path: Path) -> tuple[list[Row], dict[str, object]]:
    """(rows, meta) of a JSON results file written by main()."""
    data = json.loads(path.read_text())
    rows = []
    for r in data.pop("rows"):
        sides = {mode: Side(**side) for mode, side in r.pop("sides").items()}
        rows.append(Row(**r, sides=sides))
    return rows, data


def merge_results(rows: list[Row], meta: dict[str, object], new_rows: list[Row], new_meta: dict[str, object]
                  ) -> tuple[list[Row], dict[str, object]]:
    """`rows` with every row of the same (suite, scenario, pyc) as one of `new_rows` replaced by it (in place;
    new ones appended); `meta` says which rows were measured again, when and by which command."""
    key = lambda r: (r.suite, r.scenario, r.pyc)  # noqa: E731
    fresh = {key(r): r for r in new_rows}
    merged = [fresh.pop(key(r), r) for r in rows] + list(fresh.values())
    out = dict(meta)
    suites_again = sorted({r.suite for r in new_rows})
    out["command"] = (f"{meta['command']}`, then {', '.join(suites_again)} measured again on {new_meta['date']} "
                      f"by `{new_meta['command']}")
    out["versions"] = {**dict(meta["versions"]), **dict(new_meta["versions"])}  # type: ignore[arg-type]
    out["modes"] = [m for m in modes.MODES if m in meta["modes"] or m in new_meta["modes"]]  # type: ignore[operator]
    if new_meta.get("cold_cache_own") != meta.get("cold_cache_own"):
        out["cold_cache_own"] = None
    return merged, out


def render(ns: argparse.Namespace) -> int:
    """--from-json: the Markdown report, charts and (--docs) docs page of an earlier measurement."""
    rows, meta = load_results(ns.from_json)
    target = ns.from_json
    for other in ns.merge:
        rows, meta = merge_results(rows, meta, *load_results(other))
        target = other.with_name(f"{other.stem}-merged.json")
    if ns.merge:
        target.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=1))
    stem = target.stem
    meta["charts"] = report.charts(rows, target.parent, stem)
    text = report.markdown(rows, meta)
    target.with_suffix(".md").write_text(text)
    print(text)
    if ns.docs:
        print("docs:", ", ".join(report.write_docs(rows, meta, HERE.parent / "docs")))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ns = parse_args(argv)
    if ns.from_json:
        return render(ns)
    # SIGTERM unwinds like an exception: the edit loop's file is restored, daemons are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    gen_cache: dict[str, str] = {}

    def gen_python() -> str:
        if "python" not in gen_cache:
            gen_cache["python"] = generated_python()
        return gen_cache["python"]

    now = dt.datetime.now()
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta: dict[str, object] = {"date": now.strftime("%Y-%m-%d %H:%M"), "machine": report.machine(),
                               "pairs": ns.pairs, "command": command.strip(), "versions": {}, "cold_cache_own": True,
                               "modes": [m for m in modes.MODES if any(m in w[3] for w in ns.work)]}
    rows: list[Row] = []
    for name, scenarios, states, wanted in ns.work:
        target = make_target(name, gen_python)
        meta["versions"][name] = versions(target.python)
        info = probe(target)
        print(f"== {name}: {info.selected} selected; first node ID {info.nodeid}", flush=True)
        for scenario in scenarios:
            for cold in states:
                row = measure(target, scenario, cold, ns.pairs, info, wanted)
                rows.append(row)
                print(report.progress_line(row), flush=True)
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y-%m-%d_%H%M%S")
    meta["charts"] = report.charts(rows, ns.out_dir, stem)
    text = report.markdown(rows, meta)
    (ns.out_dir / f"{stem}.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=1))
    (ns.out_dir / f"{stem}.md").write_text(text)
    print()
    print(text)
    print(f"written: {ns.out_dir / stem}.json, .md" + "".join(f", {c}" for c in meta["charts"]))
    if ns.docs:
        print("docs:", ", ".join(report.write_docs(rows, meta, HERE.parent / "docs")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
