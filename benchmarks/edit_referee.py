"""The parity referee through the warm daemon across a scripted edit sequence on an installed real suite
(issue: staying warm while code changes), with the wall time of both sides beside each verdict.

    python benchmarks/edit_referee.py [--suite sympy] [--keyword test_basic] [--other-version 1.13.3] [--json FILE]

Every comparison is `python -m pytest_fastcollect.parity CWD --run --daemon --json -- ARGS -k KEYWORD` in the
suite's venv (benchmarks/suites.py; ARGS: `--pyargs sympy -m "not slow and not tooslow" -p no:cacheprovider`):
plain pytest (`-p no:fastcollect`) against the same run through the daemon; node IDs, order, outcomes and exit
code must agree. Steps, in order, each followed by two comparisons (the first run after the change, then a
second run):

  no change               nothing edited
  edit a test file        a comment appended to <pkg>/core/tests/test_basic.py
  edit a shared module    a comment appended to <pkg>/core/basic.py (imported by every test)
  add a test file         <pkg>/core/tests/test_fc_added.py with one test matching the keyword
  delete a test file      that file removed again
  edit the conftest       a comment appended to <pkg>/conftest.py
  environment variable    a variable the package reads at import set to its default value (another key:
                          another daemon)
  install another version `pip install <pkg>==OTHER` (the site folder changes: the daemon restarts)
Edits are undone and the pinned version reinstalled at the end. The package is installed (site-packages), so
its modules are "installed" files for the daemon: an edit there is served from level 0 (the package imported
fresh) while level 1 is rebuilt; a changed site folder restarts the daemon (that run is local and says so).

How each plugin-side run was served is printed: level 1, level 0, or local. A verdict other than
"0 differences" is a defect (except "not served by the daemon" on a local run, which is reported as local).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
import suites  # noqa: E402

NOT_SERVED = "plugin side was not served by the daemon"
#: per suite: the package, the environment variable read at import (with its default value), the keyword
SETTINGS = {"sympy": ("sympy", ("SYMPY_USE_CACHE", "yes"), "test_basic")}


def package_dir(python: str, package: str) -> Path:
    out = subprocess.run([python, "-c", f"import {package}, os; print(os.path.dirname({package}.__file__))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def compare(python: str, cwd: str, args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([python, "-m", "pytest_fastcollect.parity", cwd, "--run", "--daemon", "--json", "--", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "differences": [f"referee failed (exit {proc.returncode}): {proc.stderr[-500:]}"],
                "plain": {}, "plugin": {}}


def how_served(result: dict) -> str:
    line = result.get("plugin", {}).get("served", "")
    if "from level 0" in line:
        return "level 0"
    if line:
        return "level 1"
    return "local"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="sympy", choices=sorted(SETTINGS))
    ap.add_argument("--keyword", help="-k expression of every run (default: the suite's)")
    ap.add_argument("--other-version", default="1.13.3", help="the version the last step installs")
    ap.add_argument("--json", type=Path)
    ns = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # edits are undone on SIGTERM too
    suite = suites.SUITES[ns.suite]()
    package, (var, value), keyword = SETTINGS[ns.suite]
    keyword = ns.keyword or keyword
    python, cwd = suite.python, suite.cwd
    args = [*suite.args, "-k", keyword]
    pkg = package_dir(python, package)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONDONTWRITEBYTECODE")}
    runtime = tempfile.mkdtemp(prefix="fcer")
    os.chmod(runtime, 0o700)
    env["XDG_RUNTIME_DIR"] = runtime
    pinned = next(p for p in suites.PINS[ns.suite] if p.startswith(f"{package}=="))
    saved: dict[Path, bytes] = {}

    def append(rel: str) -> Callable[[], None]:
        def edit() -> None:
            path = pkg / rel
            saved.setdefault(path, path.read_bytes())
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"\n# edited by edit_referee.py at {time.time()}\n")
        return edit

    added = pkg / "core/tests/test_fc_added.py"

    def add() -> None:
        added.write_text(f"def {keyword}_fc_added():\n    assert 1 + 1 == 2\n", encoding="utf-8")

    def delete() -> None:
        added.unlink()

    def set_env() -> None:
        env[var] = value

    def install_other() -> None:
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"{package}=={ns.other_version}"], check=True)

    steps: list[tuple[str, Callable[[], None] | None]] = [
        ("no change", None),
        ("edit a test file", append("core/tests/test_basic.py")),
        ("edit a shared module", append("core/basic.py")),
        ("add a test file", add),
        ("delete a test file", delete),
        ("edit the conftest", append("conftest.py")),
        ("environment variable", set_env),
        (f"install {package}=={ns.other_version}", install_other),
    ]
    rows = []
    failures = 0
    try:
        for step, edit in steps:
            if edit is not None:
                edit()
            for which in ("first", "second"):
                result = compare(python, cwd, args, env)
                how = how_served(result)
                diffs = [d for d in result.get("differences", []) if not (how == "local" and d.startswith(NOT_SERVED))]
                failures += bool(diffs)
                plain, plugin = result.get("plain", {}), result.get("plugin", {})
                rows.append({"step": step, "run": which, "differences": diffs, "served": how,
                             "plain_seconds": plain.get("seconds"), "plugin_seconds": plugin.get("seconds"),
                             "summary": plain.get("summary"), "items": plain.get("items")})
                print(f"{step:<26} {which:<6} {len(diffs)} differences  plain {plain.get('seconds', 0):.2f} s  "
                      f"daemon {plugin.get('seconds', 0):.2f} s ({how})  {plain.get('items')} items; "
                      f"{plain.get('summary')!r}", flush=True)
                for d in diffs:
                    print(f"    - {d}")
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
        if added.exists():
            added.unlink()
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", pinned], check=False)
        # the referee's plugin side runs with its record path in the environment (part of the daemon's key)
        from pytest_fastcollect.parity.recorder import ENV
        from pytest_fastcollect.parity.referee import daemon_record_path

        for stop_env in ({**env, ENV: daemon_record_path(Path(cwd))},
                         {k: v for k, v in env.items() if k != var} | {ENV: daemon_record_path(Path(cwd))}):
            subprocess.run([python, "-m", "pytest", *suite.args, "--daemon-stop"], cwd=cwd, env=stop_env,
                           capture_output=True)
    print(f"\n{ns.suite}: {len(rows)} comparisons, {failures} with differences; args {' '.join(args)}; "
          f"{report.machine()}")
    if ns.json:
        ns.json.write_text(json.dumps({"suite": ns.suite, "args": args, "rows": rows, "machine": report.machine()},
                                      indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
