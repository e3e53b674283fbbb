"""Real test suites from PyPI, installed into venvs outside any folder with a pytest config.

`python benchmarks/suites.py SUITE` prints the JSON description of an installed suite (installing it
first if needed): {"python": venv interpreter, "cwd": folder to run in, "args": pytest arguments}.
Suites: click and attrs (their sdists' tests/ and ini), sympy (`--pyargs sympy`), pandas (`--pyargs pandas`), plugins
(one trivial test in a venv with xdist, hypothesis and pytest-cov installed).
Location: $FASTCOLLECT_SUITES or ~/.cache/pytest-fastcollect-suites (one venv per suite, so pytest finds no
ini file above the test paths). The plugin is installed into each venv from the wheel in build/wheels.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = Path(os.environ.get("FASTCOLLECT_SUITES", Path.home() / ".cache" / "pytest-fastcollect-suites"))

CLICK_VERSION = "8.4.0"
ATTRS_VERSION = "26.1.0"
SYMPY_VERSION = "1.14.0"
PANDAS_VERSION = "3.1.1"
PYTEST = os.environ.get("FASTCOLLECT_SUITE_PYTEST", "pytest==9.2.0")
PINS = {
    "click": [f"click=={CLICK_VERSION}", "pytest-xdist==3.8.0"],
    "attrs": [f"attrs=={ATTRS_VERSION}", "hypothesis==6.155.2", "pympler==1.1", "cloudpickle==3.1.2"],
    "sympy": [f"sympy=={SYMPY_VERSION}", "hypothesis==6.155.2", "mpmath==1.3.0", "pytest-xdist==3.8.0"],
    "pandas": [f"pandas=={PANDAS_VERSION}", "numpy==2.4.6", "hypothesis==6.155.2", "pytest-xdist==3.8.0"],
    # a plugin-rich venv, none of them used by the project (issue 20's client floor)
    "plugins": ["pytest-xdist==3.8.0", "hypothesis==6.155.2", "pytest-cov==7.1.0", "coverage==7.17.0"],
}


@dataclass
class Suite:
    name: str
    python: str
    cwd: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def _venv(name: str) -> Path:
    venv = BASE / name / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return python


def install_plugin(python: Path) -> None:
    """Install the wheel built by scripts/bootstrap.sh for this interpreter's version into its venv."""
    tag = subprocess.run([str(python), "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                         check=True, capture_output=True, text=True).stdout.strip()
    wheels = sorted(glob.glob(str(REPO / "build" / "wheels" / tag / "pytest_fastcollect-*.whl")))
    if not wheels:
        raise SystemExit("no wheel in build/wheels: run scripts/bootstrap.sh first")
    _pip(python, "--force-reinstall", "--no-deps", wheels[-1])


def _ready(python: Path, name: str) -> bool:
    marker = python.parent.parent / f".ready-{name}-{PYTEST}-{'-'.join(PINS[name])}"
    return marker.exists()


def _mark_ready(python: Path, name: str) -> None:
    (python.parent.parent / f".ready-{name}-{PYTEST}-{'-'.join(PINS[name])}").touch()


def sdist(name: str, version: str) -> Path:
    """The unpacked sdist folder of `name==version` under BASE/name (downloaded once)."""
    src = BASE / name / f"{name}-{version}"
    if not src.exists():
        (BASE / name).mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"{name}=={version}", "-d", str(BASE / name)], check=True)
        with tarfile.open(BASE / name / f"{name}-{version}.tar.gz") as tf:
            tf.extractall(BASE / name, filter="data")
    return src


def _sdist_suite(name: str, version: str, args: list[str]) -> Suite:
    """A suite run from its sdist's folder (its tests and ini) against the installed wheel."""
    python = _venv(name)
    src = sdist(name, version)
    if not _ready(python, name):
        _pip(python, PYTEST, *PINS[name])
        _mark_ready(python, name)
    install_plugin(python)
    return Suite(name, str(python), str(src), args)


def click() -> Suite:
    """click's own tests from its sdist, with its pyproject ini (addopts = -m 'not stress')."""
    # click's ini sets filterwarnings=error; pytest 9 deprecates a pattern click 8.4 still uses.
    return _sdist_suite("click", CLICK_VERSION, ["-W", "ignore::DeprecationWarning", "-p", "no:cacheprovider"])


def attrs() -> Suite:
    """attrs' own tests from its sdist (tests/ run against the installed wheel), with its pyproject ini."""
    return _sdist_suite("attrs", ATTRS_VERSION, ["tests", "-p", "no:cacheprovider"])


def _installed(name: str, args: list[str]) -> Suite:
    """A suite run from the installed package (`--pyargs name`) in an empty folder beside its venv."""
    python = _venv(name)
    if not _ready(python, name):
        _pip(python, PYTEST, *PINS[name])
        _mark_ready(python, name)
    install_plugin(python)
    return Suite(name, str(python), str(BASE / name), ["--pyargs", name, *args, "-p", "no:cacheprovider"])


def sympy() -> Suite:
    """sympy's installed test tree; the wheel has no ini, so slow tests are deselected by hand."""
    return _installed("sympy", ["-m", "not slow and not tooslow"])


def pandas() -> Suite:
    """pandas' installed test tree, with the option its own wheel test runner adds."""
    return _installed("pandas", ["--no-strict-data-files"])


def plugins() -> Suite:
    """One trivial test in a generated project, in a venv with pytest-xdist, hypothesis and pytest-cov
    installed (their plugins load in every run; the project imports none of them)."""
    python = _venv("plugins")
    if not _ready(python, "plugins"):
        _pip(python, PYTEST, *PINS["plugins"])
        _mark_ready(python, "plugins")
    install_plugin(python)
    proj = BASE / "plugins" / "proj"
    proj.mkdir(parents=True, exist_ok=True)
    (proj / "pytest.ini").write_text("[pytest]\n")
    (proj / "test_trivial.py").write_text("def test_trivial():\n    assert True\n")
    return Suite("plugins", str(python), str(proj), ["-p", "no:cacheprovider"])


SUITES = {"click": click, "attrs": attrs, "sympy": sympy, "pandas": pandas, "plugins": plugins}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    ns = parser.parse_args()
    print(json.dumps(asdict(SUITES[ns.suite]())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
