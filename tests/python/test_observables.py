"""The observables probe: what a test can see of its process, plain against served, on every serving path.

A probe test (parity/observables.py `snapshot()`) writes what it observes; each side runs it twice, so a
value that varies between plain runs (a random state) must vary between served runs too. Allowed to differ:
observables.INHERENT only, each documented with its reason in docs/how-it-works.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_fastcollect.parity.observables import INHERENT, compare

from _daemonutil import SERVED, age, run, start, status, write

PROBE = """
    import json, os
    import helper
    from pytest_fastcollect.parity.observables import snapshot

    def test_probe():
        with open(os.environ["FASTCOLLECT_PROBE_OUT"], "w") as fh:
            json.dump(snapshot(), fh, default=repr)
"""

PROJECT = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "tests/conftest.py": "import pytest\n",
    "tests/helper.py": "VALUE = 1\n",
    "tests/test_probe.py": PROBE,
}

PLAIN = ("-p", "no:fastcollect")


@pytest.fixture
def probe_project(tmp_path: Path, daemon_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    write(root, PROJECT)
    age(root)
    monkeypatch.setenv("FASTCOLLECT_PROBE_OUT", str(tmp_path / "probe.json"))
    return root


def _strip_plain(values: list[str]) -> list[str]:
    out, skip = [], False
    for i, v in enumerate(values):
        if skip:
            skip = False
            continue
        if v == "-p" and i + 1 < len(values) and values[i + 1] == "no:fastcollect":
            skip = True
            continue
        out.append(v)
    return out


def probe(root: Path, *args: str, expect: str | None = None) -> dict[str, Any]:
    """Run the probe with `args`; `expect`: a text the run's output must contain (how it was served)."""
    proc = run(root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if expect is not None:
        assert expect in proc.stdout, proc.stdout
    snap = json.loads(Path(os.environ["FASTCOLLECT_PROBE_OUT"]).read_text())
    snap["argv"] = _strip_plain(snap["argv"])
    snap["orig_argv"] = _strip_plain(snap["orig_argv"])
    return snap


def plain_runs(root: Path, *args: str) -> list[dict[str, Any]]:
    return [probe(root, *args, *PLAIN) for _ in range(2)]


def assert_same(plain: list[dict[str, Any]], served: list[dict[str, Any]]) -> None:
    differences = compare(plain, served)
    assert not differences, "\n".join(differences)


def _generation(status_text: str) -> int:
    match = re.search(r"re-warm\s+.*; (\d+) so far", status_text)
    return int(match.group(1)) if match else -1


@pytest.mark.parametrize("capture", [(), ("-s",)], ids=["captured", "no-capture"])
def test_level1_run_looks_like_a_plain_run(probe_project: Path, capture: tuple[str, ...]) -> None:
    plain = plain_runs(probe_project, *capture)
    start(probe_project)
    served = [probe(probe_project, *capture, expect=SERVED + " (pid") for _ in range(2)]
    assert_same(plain, served)


def test_fresh_flag_run_looks_like_a_plain_run(probe_project: Path) -> None:
    plain = plain_runs(probe_project)
    start(probe_project)
    served = [probe(probe_project, "--fastcollect-daemon-fresh", expect="--fastcollect-daemon-fresh)") for _ in range(2)]
    for snap in served:  # the flag itself is the one difference in argv
        snap["argv"].remove("--fastcollect-daemon-fresh")
        snap["orig_argv"].remove("--fastcollect-daemon-fresh")
    assert_same(plain, served)


def test_level0_run_looks_like_a_plain_run(probe_project: Path) -> None:
    plain = plain_runs(probe_project)
    start(probe_project)
    served = []
    for n in range(2):  # a changed conftest: level 1 cannot serve, level 0 does
        (probe_project / "tests/conftest.py").write_text(f"import pytest\n# edit {n}\n")
        served.append(probe(probe_project, expect=SERVED + " from level 0"))
    assert_same(plain, served)


def test_run_after_a_rewarm_looks_like_a_plain_run(probe_project: Path) -> None:
    plain = plain_runs(probe_project)
    start(probe_project)
    before = _generation(status(probe_project).stdout)
    (probe_project / "tests/helper.py").write_text("VALUE = 2\n")
    probe(probe_project, expect=SERVED)  # evicts helper; then a successor warms with the new code
    end = time.monotonic() + 60
    while True:
        text = status(probe_project).stdout
        if _generation(text) > before and re.search(r"template\s+ready", text):
            break
        assert time.monotonic() < end, text
        time.sleep(0.3)
    served = [probe(probe_project, expect="0 changed files") for _ in range(2)]
    assert_same(plain, served)


def test_warm_xdist_worker_looks_like_a_plain_worker(probe_project: Path) -> None:
    pytest.importorskip("xdist")
    plain = plain_runs(probe_project, "-n", "1")
    start(probe_project, "-n", "1")
    served = [probe(probe_project, "-n", "1", expect=SERVED) for _ in range(2)]
    assert all("pytest_fastcollect.daemon.child" in s["modules"] for s in served), "worker not forked warm"
    assert_same(plain, served)


def test_coverage_run_from_level0_looks_like_a_plain_run(probe_project: Path) -> None:
    pytest.importorskip("pytest_cov")
    args = ("--cov=helper", "--cov-report=")
    plain = plain_runs(probe_project, *args)
    start(probe_project)
    served = [probe(probe_project, *args, expect="from level 0") for _ in range(2)]
    assert all(s["trace_hooks"]["trace"] != "None" for s in served), "coverage is not tracing the run"
    assert_same(plain, served)


def test_inherent_differences_are_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "how-it-works.md").read_text()
    section = doc.split("### What a served run can tell", 1)
    assert len(section) == 2, "docs/how-it-works.md lacks the section"
    for name in INHERENT:
        assert f"`{name}`" in section[1], f"{name} is not documented"
