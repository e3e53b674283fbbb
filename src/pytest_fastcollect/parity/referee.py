"""Run pytest twice in separate processes (plugin off with `-p no:fastcollect`, plugin on) and diff.

What is compared: the selected node IDs and their order, collection errors, the number deselected, the
outcome of every test phase (full runs), the final summary line without its duration, and the exit code.
The plugin side must really have had the plugin active (else the comparison would be vacuous).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recorder import ENV

_DURATION = re.compile(r"\s+in\s+[0-9.]+s(\s+\([0-9:.]+\))?")


@dataclass
class Side:
    """One pytest process: its command, exit code, stdout, and the recorder's document."""

    name: str
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    record: dict[str, Any]
    #: wall-clock seconds of the process
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        """The last non-empty stdout line, duration removed (e.g. '3 passed, 1 skipped')."""
        lines = [ln.strip() for ln in self.stdout.splitlines() if ln.strip()]
        if not lines:
            return ""
        return _DURATION.sub("", lines[-1]).strip("= ")

    @property
    def served(self) -> str:
        """The header line saying the warm daemon ran this process ('fastcollect: run by the warm daemon
        from level 0 ...' or '... (pid N, warm ...)'), or '' for a run that was not served."""
        return next((ln for ln in self.stdout.splitlines() if ln.startswith("fastcollect: run by the warm")), "")

    @property
    def daemon_note(self) -> str:
        """Why the daemon did or did not serve this run: its header line, else the plugin's -v daemon note
        from the record ('ran locally (...)', 'daemon unavailable: ...'), else ''."""
        return self.served or str(((self.record or {}).get("fastcollect") or {}).get("daemon_note") or "")

    def outcomes(self) -> list[tuple[str, str, str, bool]]:
        return [tuple(r) for r in self.record.get("reports", [])]  # type: ignore[misc]


@dataclass
class Comparison:
    plain: Side
    plugin: Side
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def run_side(
    name: str,
    path: Path,
    pytest_args: list[str],
    extra: list[str],
    env: dict[str, str] | None,
    timeout: float,
    record_path: str | None = None,
) -> Side:
    """Run `python -m pytest <pytest_args> <extra> -p pytest_fastcollect.parity.recorder` in `path`. The
    recorder writes to `record_path` (a fresh temporary file when None)."""
    with tempfile.TemporaryDirectory(prefix="fastcollect-parity-") as tmp:
        record_path = record_path or os.path.join(tmp, "record.json")
        if os.path.exists(record_path):
            os.unlink(record_path)
        run_env = dict(os.environ if env is None else env)
        run_env[ENV] = record_path
        argv = [sys.executable, "-m", "pytest", *pytest_args, *extra, "-p", "pytest_fastcollect.parity.recorder"]
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=path, env=run_env, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {}
        if os.path.exists(record_path):
            with open(record_path, encoding="utf-8") as fh:
                record = json.load(fh)
    return Side(name, argv, proc.returncode, proc.stdout, proc.stderr, record, seconds)


def daemon_record_path(path: Path) -> str:
    """A record path that stays the same for a project: the environment is part of a daemon's key, so the
    plugin side of a daemon comparison must not carry a new temporary path each time."""
    folder = os.path.join(tempfile.gettempdir(), f"fastcollect-parity-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return os.path.join(folder, f"{digest}.json")


def _diff_lists(label: str, a: list[str], b: list[str], limit: int = 20) -> list[str]:
    out: list[str] = []
    if a == b:
        return out
    sa, sb = set(a), set(b)
    missing = [x for x in a if x not in sb]
    extra = [x for x in b if x not in sa]
    for x in missing[:limit]:
        out.append(f"{label}: missing with plugin: {x}")
    for x in extra[:limit]:
        out.append(f"{label}: extra with plugin: {x}")
    if len(missing) > limit or len(extra) > limit:
        out.append(f"{label}: ... {len(missing)} missing, {len(extra)} extra in all")
    if not missing and not extra:
        if len(a) != len(b):
            out.append(f"{label}: same IDs, different multiplicity ({len(a)} vs {len(b)})")
        else:
            first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            out.append(f"{label}: order differs from position {first}: {a[first]} (plain) vs {b[first]} (plugin)")
    return out


def compare(
    plain: Side, plugin: Side, *, ordered: bool = True, require_active: bool = True, daemon: bool = False
) -> Comparison:
    """All differences between the two sides; empty means parity. With `daemon`, the plugin side must have
    been served by the warm daemon."""
    cmp = Comparison(plain, plugin)
    d = cmp.differences
    if daemon:
        fc = (plugin.record or {}).get("fastcollect") or {}
        if not fc.get("served_by_daemon"):
            d.append(f"plugin side was not served by the daemon: {plugin.daemon_note or '(no daemon note)'}")
    if not plain.record:
        d.append(f"plain side wrote no record (exit {plain.returncode}): {plain.stderr.strip()[-500:]}")
    if not plugin.record:
        d.append(f"plugin side wrote no record (exit {plugin.returncode}): {plugin.stderr.strip()[-500:]}")
    if require_active:
        fc = plugin.record.get("fastcollect") if plugin.record else None
        if not fc or not fc.get("enabled") or fc.get("failure"):
            d.append(f"plugin was not active on the plugin side: {fc!r}")
    if plain.returncode != plugin.returncode:
        d.append(f"exit code: {plain.returncode} (plain) vs {plugin.returncode} (plugin)")
    pa, pb = plain.record.get("items", []), plugin.record.get("items", [])
    if not ordered:
        pa, pb = sorted(pa), sorted(pb)
    d.extend(_diff_lists("items", pa, pb))
    ea = sorted(e[0] for e in plain.record.get("collect_errors", []))
    eb = sorted(e[0] for e in plugin.record.get("collect_errors", []))
    d.extend(_diff_lists("collection errors", ea, eb))
    if plain.record.get("deselected") != plugin.record.get("deselected"):
        d.append(f"deselected: {plain.record.get('deselected')} (plain) vs {plugin.record.get('deselected')} (plugin)")
    oa, ob = plain.outcomes(), plugin.outcomes()
    if not ordered:
        oa, ob = sorted(oa), sorted(ob)
    if oa != ob:
        da = {(r[0], r[1]): r for r in oa}
        db = {(r[0], r[1]): r for r in ob}
        shown = 0
        for key in list(da) + [k for k in db if k not in da]:
            if da.get(key) != db.get(key) and shown < 20:
                d.append(f"outcome {key[0]} [{key[1]}]: {da.get(key)} (plain) vs {db.get(key)} (plugin)")
                shown += 1
        if shown == 0:
            d.append("outcomes: same reports in a different order")
    if plain.summary != plugin.summary:
        d.append(f"summary line: {plain.summary!r} (plain) vs {plugin.summary!r} (plugin)")
    cov_a, cov_b = coverage_report(plain.stdout), coverage_report(plugin.stdout)
    if cov_a != cov_b:
        d.extend(f"coverage report: {x}" for x in _diff_lists("line", cov_a, cov_b))
    return cmp


def coverage_report(stdout: str) -> list[str]:
    """The coverage table pytest-cov or coverage prints (the header row to the TOTAL row), else []."""
    lines = stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Name") and "Stmts" in ln), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("TOTAL")), len(lines) - 1)
    return [ln.rstrip() for ln in lines[start : end + 1] if not set(ln.strip()) <= {"-"}]


def without_selection(args: list[str]) -> list[str]:
    """`args` without -k/-m and their values (`-k EXPR`, `-kEXPR`, `-k=EXPR`, `-m ...`)."""
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg in ("-k", "-m"):
            skip_next = True
            continue
        if arg.startswith(("-k", "-m")) and not arg.startswith("--"):
            continue
        out.append(arg)
    return out


def referee(
    path: Path,
    pytest_args: list[str],
    *,
    run: bool = False,
    plugin_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
    require_active: bool = True,
    daemon: bool = False,
    prime: list[str] | None = None,
) -> Comparison:
    """Run both sides on `path` and compare. Without `run`, both sides are `--collect-only -q`. With
    `daemon`, the plugin side goes through the warm daemon of `path` (started with `--daemon-start` and the
    same arguments if none is ready) and must have been served by it. `prime`: pytest arguments of one
    plugin-side `--collect-only` run made first (not compared), so that the compared run finds the
    collection recorded (e.g. the same arguments without -k/-m)."""
    args = command_args(pytest_args, run)
    extra, env, record_path = prepare(path, args, plugin_args, env, timeout, daemon=daemon, prime=prime)
    plain = run_side("plain", path, args, ["-p", "no:fastcollect"], env, timeout)
    plugin = run_side("plugin", path, args, extra, env, timeout, record_path)
    return compare(plain, plugin, ordered=is_ordered(pytest_args), require_active=require_active, daemon=daemon)


def command_args(pytest_args: list[str], run: bool) -> list[str]:
    """Both sides' pytest arguments: the full run's, or `--collect-only -q` with them."""
    return list(pytest_args) if run else ["--collect-only", "-q", *pytest_args]


def is_ordered(pytest_args: list[str]) -> bool:
    """Whether node IDs and reports are compared in order (not under xdist, whose order is the workers':
    `-n`, `--numprocesses`, `--tx`, `--dist`/`-d`)."""
    return not any(a == "-d" or a.startswith(("-n", "--numprocesses", "--tx", "--dist")) for a in pytest_args)


def prepare(
    path: Path,
    args: list[str],
    plugin_args: list[str] | None,
    env: dict[str, str] | None,
    timeout: float,
    *,
    daemon: bool = False,
    prime: list[str] | None = None,
) -> tuple[list[str], dict[str, str] | None, str | None]:
    """(the plugin side's extra arguments, the environment, its record path) after the priming run and,
    with `daemon`, after starting the project's daemon for `args` if none is ready."""
    extra = list(plugin_args or [])
    if prime is not None:
        run_side("prime", path, ["--collect-only", "-q", *prime], extra, env, timeout)
    record_path = None
    if daemon:
        extra.append("--fastcollect-auto-daemon")
        record_path = daemon_record_path(path)
        env = {**(os.environ if env is None else env), ENV: record_path}
        if not daemon_running(path, args, env):
            start_daemon(path, args, env, timeout)
    return extra, env, record_path


def _daemon_command(path: Path, args: list[str], command: str, env: dict[str, str] | None, timeout: float) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", *args, "-p", "pytest_fastcollect.parity.recorder", command]
    return subprocess.run(argv, cwd=path, env=dict(os.environ if env is None else env), capture_output=True, text=True, timeout=timeout)


def daemon_running(path: Path, args: list[str], env: dict[str, str] | None) -> bool:
    """True when the daemon for this project and these arguments' key runs and is ready."""
    return _daemon_command(path, args, "--daemon-health", env, 60).returncode == 0


def start_daemon(path: Path, args: list[str], env: dict[str, str] | None, timeout: float) -> None:
    """`pytest ARGS --daemon-start` in `path` (waits until warm). Raises RuntimeError if it fails."""
    proc = _daemon_command(path, args, "--daemon-start", env, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"--daemon-start failed (exit {proc.returncode}): {proc.stdout[-1000:]}{proc.stderr[-1000:]}")


def stop_daemon(path: Path, args: list[str], env: dict[str, str] | None) -> None:
    _daemon_command(path, args, "--daemon-stop", env, 60)


def format_report(cmp: Comparison) -> str:
    """Human-readable verdict: one line per side, then the differences."""
    lines = []
    for side in (cmp.plain, cmp.plugin):
        rec = side.record or {}
        lines.append(
            f"{side.name:>6}: exit {side.returncode}, {len(rec.get('items', []))} items, "
            f"{len(rec.get('collect_errors', []))} collection errors, {rec.get('deselected', 0)} deselected, "
            f"{len(rec.get('reports', []))} reports; {side.summary!r}"
        )
    fc = (cmp.plugin.record or {}).get("fastcollect")
    if fc:
        cache = fc.get("cache")
        where = "no cache"
        if cache:
            where = f"cache: {cache['trusted'] + cache['rehashed']} from cache, {cache['parsed']} parsed"
            if cache.get("warning"):
                where += f"; {cache['warning']}"
        lines.append(f"plugin: files scanned {fc.get('files_scanned')} ({where})")
        if fc.get("served_by_daemon"):
            lines.append("plugin: served by the warm daemon")
    if cmp.ok:
        lines.append("parity: 0 differences")
    else:
        lines.append(f"parity: {len(cmp.differences)} differences")
        lines.extend(f"  - {x}" for x in cmp.differences)
    return "\n".join(lines)
