"""Generate a synthetic, deterministic pytest suite into a folder (for benchmarks/run.py).

    python benchmarks/generate.py DEST --preset 10k-light
    python benchmarks/generate.py DEST --tests 5000 --imports heavy [--per-file 50] [--seed 0]

Layout: DEST/pytest.ini (registers the markers `slow` and `db`), DEST/bench_helper.py (the "project
helper", imported by heavy suites), and test modules of `--per-file` tests each in nested packages
(every folder has an __init__.py): DEST/pkg_PPP/sub_SS/test_mod_FFFFF.py, 10 modules per sub-package,
10 sub-packages per package. Each module mixes plain functions, a Test class, and parametrized functions
with literal ids; a fixed share of the tests carry @pytest.mark.slow or @pytest.mark.db. The only
randomness is a random.Random(seed), so the same arguments always give the same bytes.

"light" modules import stdlib only (os, sys). "heavy" modules also import a few heavier stdlib modules and
bench_helper, which imports json, decimal, email, xml.etree, csv and others. No third-party package
besides pytest is imported.

Test counts: exactly `--tests` tests are generated (the last module may be shorter). Function names embed
the module number (test_m00012_f03), so `-k <name>` selects exactly one function's tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PRESETS: dict[str, tuple[int, str]] = {
    "1k-light": (1_000, "light"),
    "1k-heavy": (1_000, "heavy"),
    "10k-light": (10_000, "light"),
    "10k-heavy": (10_000, "heavy"),
    "100k-light": (100_000, "light"),
    "100k-heavy": (100_000, "heavy"),
}
MODULES_PER_SUB = 10
SUBS_PER_PKG = 10
PARAMS_PER_FUNCTION = 5
METHODS_PER_CLASS = 10
MARKER_NAME = ".fastcollect-generated.json"

PYTEST_INI = """[pytest]
markers =
    slow: a slow test (synthetic)
    db: a test that would need a database (synthetic)
"""

HELPER = '''"""Project helper of a synthetic benchmark suite: imports a spread of stdlib modules at import time."""
import csv
import dataclasses
import decimal
import email.message
import email.mime.text
import json
import xml.etree.ElementTree as ET
from fractions import Fraction


@dataclasses.dataclass
class Record:
    name: str
    amount: decimal.Decimal


def make_record(i: int) -> Record:
    return Record(f"r{i}", decimal.Decimal(i) / 4)


def roundtrip(value: object) -> object:
    return json.loads(json.dumps(value))


def xml_name(text: str) -> str:
    return ET.fromstring(f"<a>{text}</a>").text or ""


def half(i: int) -> Fraction:
    return Fraction(i, 2)
'''

LIGHT_IMPORTS = "import os\nimport sys\n\nimport pytest\n"
HEAVY_IMPORTS = ("import asyncio\nimport concurrent.futures\nimport http.client\nimport logging.handlers\n"
                 "import os\nimport sys\nimport unittest.mock\n\nimport pytest\n\n"
                 "from bench_helper import half, make_record, roundtrip, xml_name\n")


@dataclass(frozen=True)
class Spec:
    """What to generate: total tests, import weight, tests per module, seed."""

    tests: int
    imports: str
    per_file: int = 50
    seed: int = 0

    def key(self) -> str:
        """A short hash of the spec, stored beside the suite so a changed spec regenerates it."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def module_path(root: Path, index: int) -> Path:
    """Path of test module number `index` in the nested package layout."""
    sub_global = index // MODULES_PER_SUB
    pkg, sub = divmod(sub_global, SUBS_PER_PKG)
    return root / f"pkg_{pkg:03d}" / f"sub_{sub:02d}" / f"test_mod_{index:05d}.py"


def body(rng: random.Random, heavy: bool) -> str:
    """One assertion line for a test body (deterministic from rng)."""
    a, b = rng.randrange(100), rng.randrange(100)
    if heavy and rng.random() < 0.3:
        return f"    assert roundtrip({a}) == {a} and half({b}) * 2 == {b}\n"
    return f"    assert {a} + {b} == {a + b}\n"


def mark_line(rng: random.Random, indent: str = "") -> str:
    """Optionally a marker decorator: about 10% slow, 5% db."""
    r = rng.random()
    if r < 0.10:
        return f"{indent}@pytest.mark.slow\n"
    if r < 0.15:
        return f"{indent}@pytest.mark.db\n"
    return ""


def module_source(index: int, count: int, heavy: bool, rng: random.Random) -> str:
    """Source of a test module holding exactly `count` tests: a class of METHODS_PER_CLASS methods,
    parametrized functions of PARAMS_PER_FUNCTION cases, and plain functions for the rest."""
    parts = [f'"""Synthetic test module {index} ({count} tests)."""\n', HEAVY_IMPORTS if heavy else LIGHT_IMPORTS]
    left = count
    fn = 0
    if left >= METHODS_PER_CLASS:
        parts.append(f"\n\nclass TestGroup{index:05d}:\n")
        for j in range(METHODS_PER_CLASS):
            parts.append("\n" + mark_line(rng, "    ") + f"    def test_m{index:05d}_c{j:02d}(self):\n    "
                         + body(rng, heavy))
        left -= METHODS_PER_CLASS
    while left > 0:
        name = f"test_m{index:05d}_f{fn:02d}"
        fn += 1
        if left >= PARAMS_PER_FUNCTION and fn % 3 == 1:
            ids = ", ".join(f'"case{k}"' for k in range(PARAMS_PER_FUNCTION))
            values = ", ".join(str(rng.randrange(1000)) for _ in range(PARAMS_PER_FUNCTION))
            parts.append(f"\n\n{mark_line(rng)}@pytest.mark.parametrize(\"value\", [{values}], ids=[{ids}])\n"
                         f"def {name}(value):\n    assert value >= 0\n")
            left -= PARAMS_PER_FUNCTION
        else:
            parts.append(f"\n\n{mark_line(rng)}def {name}():\n" + body(rng, heavy))
            left -= 1
    return "".join(parts)


def write_if_changed(path: Path, text: str) -> None:
    """Write text unless the file already holds it (keeps mtimes, and so the caches, stable)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def generate(root: Path, spec: Spec) -> int:
    """Generate the suite into root (replacing a suite of another spec); return the number of modules.
    A suite already generated with the same spec is left untouched."""
    marker = root / MARKER_NAME
    modules = -(-spec.tests // spec.per_file)
    if marker.exists() and json.loads(marker.read_text()).get("key") == spec.key():
        return modules
    if root.exists():
        for child in root.iterdir():
            if child.name.startswith("pkg_"):
                shutil.rmtree(child)
    root.mkdir(parents=True, exist_ok=True)
    write_if_changed(root / "pytest.ini", PYTEST_INI)
    write_if_changed(root / "bench_helper.py", HELPER)
    rng = random.Random(spec.seed)
    heavy = spec.imports == "heavy"
    for index in range(modules):
        count = min(spec.per_file, spec.tests - index * spec.per_file)
        path = module_path(root, index)
        for pkg_dir in (path.parent.parent, path.parent):
            write_if_changed(pkg_dir / "__init__.py", "")
        write_if_changed(path, module_source(index, count, heavy, rng))
    marker.write_text(json.dumps({"key": spec.key(), **asdict(spec), "modules": modules}))
    return modules


def spec_for(preset: str, seed: int = 0) -> Spec:
    """The Spec of a named preset (e.g. "10k-light")."""
    tests, imports = PRESETS[preset]
    return Spec(tests=tests, imports=imports, seed=seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--tests", type=int, help="number of tests (without --preset)")
    ap.add_argument("--imports", choices=["light", "heavy"], default="light")
    ap.add_argument("--per-file", type=int, default=50, help="tests per module")
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args()
    if ns.preset:
        spec = spec_for(ns.preset, ns.seed)
    elif ns.tests:
        spec = Spec(tests=ns.tests, imports=ns.imports, per_file=ns.per_file, seed=ns.seed)
    else:
        ap.error("give --preset or --tests")
    modules = generate(ns.dest, spec)
    print(f"{ns.dest}: {spec.tests} tests in {modules} modules ({spec.imports} imports, seed {spec.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
