"""Long run: N sequential runs served by one warm daemon, sampling what could leak in its processes.

    python benchmarks/longrun.py [--runs 1000] [--every 50] [--json PATH] [--suite gen-1k]

A generated project (benchmarks/generate.py, or a small default one), one daemon in a socket folder of its
own; every run must be served (the header says so) and exit 0. Every `--every` runs, for level 0 (the pid
file's process) and level 1 (the socket holder, from --daemon-status): open fds (/proc/PID/fd), OS threads
(/proc/PID/task), RSS (VmRSS) and PSS (smaps_rollup), in KiB. Prints one row per sample and the first and
last side by side; exits 1 if a run was not served or failed, or if the fd or thread count of a level grew
between the first and the last sample (a leak), or its RSS grew by more than 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any


def _project(root: Path) -> None:
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (root / "tests" / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef one():\n    return 1\n")
    for i in range(20):
        (root / "tests" / f"test_m{i:02d}.py").write_text(textwrap.dedent(f"""
            import json, os, pytest

            @pytest.mark.parametrize("x", range(5))
            def test_value(x, one, tmp_path):
                (tmp_path / "f").write_text(json.dumps(x))
                assert x + one > 0

            def test_fd_{i}():
                with open(os.devnull) as fh:
                    assert fh.read() == ""
        """))


def _proc(pid: int) -> dict[str, int | None]:
    def field(name: str) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(name + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def pss() -> int | None:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def count(sub: str) -> int | None:
        try:
            return len(os.listdir(f"/proc/{pid}/{sub}"))
        except OSError:
            return None

    return {"fds": count("fd"), "threads": count("task"), "rss_kib": field("VmRSS"), "pss_kib": pss()}


def _levels(python: str, root: Path, env: dict[str, str]) -> tuple[int | None, int | None]:
    out = subprocess.run([python, "-m", "pytest", "--daemon-status"], cwd=root, env=env, capture_output=True,
                         text=True).stdout
    level0 = re.search(r"level 0\s+pid (\d+)", out)
    level1 = re.search(r"level 1\s+pid (\d+)", out)
    return (int(level0.group(1)) if level0 else None, int(level1.group(1)) if level1 else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/longrun.py")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    ns = parser.parse_args(argv)
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="fclong"))
    root = work / "proj"
    _project(root)
    past = time.time() - 10
    for path in root.rglob("*"):
        os.utime(path, (past, past))
    runtime = work / "rt"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("CI", None)
    start = subprocess.run([python, "-m", "pytest", "--daemon-start"], cwd=root, env=env, capture_output=True, text=True)
    if start.returncode != 0:
        print(start.stdout, start.stderr)
        return 1
    samples: list[dict[str, Any]] = []
    failures = 0
    t0 = time.monotonic()
    try:
        for n in range(1, ns.runs + 1):
            proc = subprocess.run([python, "-m", "pytest", "-p", "no:randomly"], cwd=root, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0 or "run by the warm daemon" not in proc.stdout:
                failures += 1
                print(f"run {n}: exit {proc.returncode}, served: {'run by the warm daemon' in proc.stdout}",
                      file=sys.stderr)
            if n == 1 or n % ns.every == 0:
                level0, level1 = _levels(python, root, env)
                sample = {"run": n, "seconds": round(time.monotonic() - t0, 1),
                          "level0": {"pid": level0, **_proc(level0)} if level0 else None,
                          "level1": {"pid": level1, **_proc(level1)} if level1 else None}
                samples.append(sample)
                row = [f"run {n:5d}"]
                for name in ("level0", "level1"):
                    s = sample[name] or {}
                    row.append(f"{name}: pid {s.get('pid')} fds {s.get('fds')} threads {s.get('threads')} "
                               f"RSS {s.get('rss_kib')} KiB PSS {s.get('pss_kib')} KiB")
                print("  ".join(row), flush=True)
    finally:
        subprocess.run([python, "-m", "pytest", "--daemon-stop"], cwd=root, env=env, capture_output=True)
    first, last = samples[0], samples[-1]
    problems = []
    for name in ("level0", "level1"):
        a, b = first[name] or {}, last[name] or {}
        if a.get("pid") != b.get("pid"):
            problems.append(f"{name} changed pid ({a.get('pid')} -> {b.get('pid')})")
            continue
        for key in ("fds", "threads"):
            if (b.get(key) or 0) > (a.get(key) or 0):
                problems.append(f"{name} {key} grew: {a.get(key)} -> {b.get(key)}")
        if a.get("rss_kib") and b.get("rss_kib") and b["rss_kib"] > a["rss_kib"] * 1.1:
            problems.append(f"{name} RSS grew by more than 10%: {a['rss_kib']} -> {b['rss_kib']} KiB")
    summary = {"runs": ns.runs, "failures": failures, "seconds": round(time.monotonic() - t0, 1),
               "first": first, "last": last, "problems": problems, "samples": samples}
    print(f"{ns.runs} runs in {summary['seconds']}s, {failures} not served or failed; problems: {problems or 'none'}")
    if ns.json:
        ns.json.write_text(json.dumps(summary, indent=1))
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
