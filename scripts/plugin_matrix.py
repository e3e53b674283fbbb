"""The plugin compatibility matrix: the parity referee on small projects that exercise popular pytest plugins.

    python scripts/plugin_matrix.py [--only NAME ...] [--config NAME ...] [--repeat N] [--markdown PATH]
                                    [--json PATH] [--setup-only] [--no-build] [--list]

The page that shows its results and explains them: docs/compatibility.md.

What it does, in order:

1. Makes one venv, `$FASTCOLLECT_SUITES/plugins/venv` (default `~/.cache/pytest-fastcollect-suites/plugins/venv`,
   the convention of benchmarks/suites.py, whose BASE, _venv, _pip and install_plugin it reuses), outside any
   folder with a pytest config, installs the pinned versions of PINS from PyPI into it (once: a marker file
   names the pins) and then the project's wheel from build/wheels/cp3XY/ (every time: `--force-reinstall
   --no-deps`, so a rebuilt wheel is picked up). A wheel older than the source (no `.stamp-*` beside it that
   matches, as scripts/bootstrap.sh computes it) is rebuilt first by scripts/bootstrap.sh, unless --no-build.
2. Writes, per plugin, a small generated test project under `$FASTCOLLECT_SUITES/plugins/projects/NAME/`
   (rewritten from scratch on every invocation; PROJECTS below says what each one exercises), each with its own
   `pytest.ini`, and runs its set-up commands with the plugin off (`-p no:fastcollect`): syrupy's
   `--snapshot-update`, the failing example hypothesis saves in its example database, the values
   pytest-randomly's reseeding gives. Every generated test module starts with IMPORT_MARKER (it appends its
   name to the project's `.imports.log`). Each project's args turn off the installed plugins it is not about
   (QUIET: randomly, hypothesis, django, rerunfailures; why at QUIET).
3. For each plugin runs the referee (`python -m pytest_fastcollect.parity`, src/pytest_fastcollect/parity/) in
   each configuration of CONFIGS: plugin in-process, through the warm daemon, `-k EXPR` with `--prime`, `-n 2`
   in-process and `-n 2` through the daemon, every one with `--repeat N`. Each referee run gets its own
   XDG_RUNTIME_DIR (a fresh mode-0700 temporary folder: the daemon's socket folder lives in it), and afterwards
   every daemon is stopped: `python -m pytest ARGS --daemon-stop` in the project (with the environment of the
   referee's plugin side and with the plain one), then every pid in the socket folder's *.pid files and every
   process whose environment names that XDG_RUNTIME_DIR is killed (they were all started by this run).
   In-process configurations pass `--plugin-arg=--no-fastcollect-auto-daemon`: the plugin side's
   environment carries a fresh record path per run, so it would otherwise start a new daemon after every run.
   After the referee, a probe run (not compared): for -k rows, which test modules were really left unimported;
   for daemon rows, which daemon level served a `-v` run. A row not served by the daemon is run once more with
   `--plugin-arg=-v` (the reason then shows in its differences); a failing row keeps its daemon logs in
   `$FASTCOLLECT_SUITES/plugins/logs/`.
4. Prints one row per (plugin, configuration) to stderr as it goes (the command, the referee's exit code, its
   `parity: ...` line), then writes the JSON results file (default `$FASTCOLLECT_SUITES/plugins/results.json`)
   and the markdown tables (to stdout, or to `--markdown PATH`).

Shapes:
  PINS:     {distribution: exact version}, all installed together into the one venv
  PROJECTS: {name: Project(plugin distributions, files {relative path: text}, args for every pytest run,
            kexpr for the -k configuration, setup [(pytest args, extra env)], exercises: str)}
  CONFIGS:  [Config(name, referee flags, plugin-side args, extra pytest args)]
  results JSON: {"date", "python", "cpus", "repeat", "pins": {dist: version installed}, "total_seconds",
                 "commit", "source_changes", "started",
                 "rows": [{"plugin", "config", "command", "cwd", "exit", "parity", "differences": [str],
                           "flaky": [str], "seconds", "killed": [pid], "plain_side", "plugin_side", "probe",
                           "output": str, "diagnosis": {} | {"command", "exit", "parity", "differences"}}]}
Exit code: 0 when every row had referee exit 0, 1 otherwise, 2 on a set-up failure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import suites  # noqa: E402  (benchmarks/suites.py: BASE, _venv, _pip, install_plugin)

NAME = "plugins"
ROOT = suites.BASE / NAME
PROJECTS_DIR = ROOT / "projects"
RESULTS = ROOT / "results.json"
LOGS = ROOT / "logs"

#: Exact versions, each checked to install together with pytest 9.2.0 on Python 3.11 (`pip index versions`,
#: then this install). pytest-randomly 5.1.0 is its newest release (requires pytest >= 7, none excluded).
PINS: dict[str, str] = {
    "pytest": "9.2.0",
    "pytest-xdist": "3.8.0",
    "pytest-cov": "7.1.0",
    "coverage": "7.17.0",
    "pytest-randomly": "5.1.0",
    "pytest-asyncio": "1.5.0",
    "pytest-timeout": "2.4.0",
    "pytest-rerunfailures": "16.7",
    "hypothesis": "6.155.2",
    "pytest-django": "4.14.0",
    "Django": "5.2.19",
    "pytest-split": "0.11.0",
    "syrupy": "7.0.3",
}

NO_AUTO_DAEMON = "--plugin-arg=--no-fastcollect-auto-daemon"
#: What every project turns off unless it is the plugin exercised: pytest-randomly (installed, it shuffles with a
#: new seed each run), hypothesis's pytest plugin (it imports all of hypothesis: 0.8 s of each process here,
#: xdist workers included) and pytest-django (its `pytest_itemcollected` hook makes the plugin import every
#: test file under -k/-m, src/pytest_fastcollect/selection.py SkippedModule: no file would be left unimported)
#: and pytest-rerunfailures (with xdist installed, its pytest_configure starts a socket server thread in every
#: controller, even without --reruns or -n: the daemon's level 1 is then not forkable and every run is served
#: from level 0, the project imported fresh).
NO_RANDOMLY = ["-p", "no:randomly"]
NO_HYPOTHESIS = ["-p", "no:hypothesispytest"]
NO_DJANGO = ["-p", "no:django"]
NO_RERUN = ["-p", "no:rerunfailures"]
QUIET = [*NO_RANDOMLY, *NO_HYPOTHESIS, *NO_DJANGO, *NO_RERUN]
#: The first line of every generated test module: it appends the module's name to `.imports.log` in the
#: working folder (the project's), so the -k probe sees which test modules a run really imported.
IMPORT_LOG = ".imports.log"
IMPORT_MARKER = f'with open("{IMPORT_LOG}", "a") as _log: _log.write(__name__ + "\\n")  # plugin_matrix.py: imported\n'

#: Seconds one referee run may take before it is stopped (its row then shows exit "timeout").
ROW_TIMEOUT = 900.0


@dataclass
class Project:
    """One generated test project: what it exercises and how every run of it is made."""

    plugins: list[str]
    files: dict[str, str]
    args: list[str]
    kexpr: str
    exercises: str
    #: pytest runs made once after writing the files, plugin off: (args, extra environment)
    setup: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)


@dataclass
class Config:
    """One referee configuration: its flags, the plugin side's own arguments, pytest arguments added."""

    name: str
    referee: list[str]
    plugin_args: list[str]
    extra: Callable[[Project], list[str]]
    #: after the referee, one plugin-side run (not compared) that shows what the plugin did: "k" prints its `-k/-m`
    #: header line and which test modules it really imported, "daemon" its `-v` line of the warm daemon (which
    #: level served it)
    probe: str = ""


CONFIGS: list[Config] = [
    Config("in-process", ["--run"], [NO_AUTO_DAEMON], lambda p: []),
    Config("daemon", ["--run", "--daemon"], [], lambda p: [], probe="daemon"),
    Config("-k + prime", ["--run", "--prime"], [NO_AUTO_DAEMON], lambda p: ["-k", p.kexpr], probe="k"),
    Config("-n 2", ["--run"], [NO_AUTO_DAEMON], lambda p: ["-n", "2"]),
    Config("-n 2 daemon", ["--run", "--daemon"], [], lambda p: ["-n", "2"], probe="daemon"),
]


def _d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --------------------------------------------------------------------------------------------- projects

def _xdist() -> Project:
    return Project(
        ["pytest-xdist"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            "tests/conftest.py": _d('''
                import pytest


                @pytest.hookimpl(optionalhook=True)
                def pytest_configure_node(node):
                    node.workerinput["matrix_token"] = "handed-to-workers"


                @pytest.fixture(scope="session")
                def shared_dir(tmp_path_factory, worker_id):
                    # the usual pattern for session data shared by the workers: the parent of the base temp
                    root = tmp_path_factory.getbasetemp().parent if worker_id != "master" else tmp_path_factory.getbasetemp()
                    (root / f"seen-{worker_id}").write_text(worker_id)
                    return root
            '''),
            "tests/test_workers.py": _d('''
                import os

                import pytest


                def test_worker_id_fixture(worker_id):
                    assert worker_id == "master" or worker_id.startswith("gw")


                def test_env_matches_worker_id(worker_id):
                    assert os.environ.get("PYTEST_XDIST_WORKER", "master") == worker_id


                def test_testrun_uid(testrun_uid):
                    assert len(testrun_uid) == 32


                def test_workerinput(request, worker_id):
                    if worker_id == "master":
                        assert not hasattr(request.config, "workerinput")
                    else:
                        assert request.config.workerinput["matrix_token"] == "handed-to-workers"


                @pytest.mark.parametrize("n", range(6))
                def test_param(n):
                    assert n * n >= 0
            '''),
            "tests/test_groups.py": _d('''
                import pytest


                @pytest.mark.xdist_group(name="db")
                def test_group_a():
                    assert True


                @pytest.mark.xdist_group(name="db")
                def test_group_b():
                    assert True


                class TestGroupClass:
                    @pytest.mark.xdist_group(name="other")
                    def test_group_c(self):
                        assert True

                    @pytest.mark.xfail(reason="expected", strict=True)
                    def test_group_xfail(self):
                        assert False
            '''),
            "tests/test_session_fixture.py": _d('''
                def test_shared_dir(shared_dir, worker_id):
                    assert (shared_dir / f"seen-{worker_id}").read_text() == worker_id


                def test_failing():
                    assert 1 + 1 == 3
            '''),
        },
        [*QUIET, "--dist", "loadgroup"],
        "group or param",
        "`--dist loadgroup` with `xdist_group` marks, the `worker_id` and `testrun_uid` fixtures, a conftest "
        "`pytest_configure_node` hook adding to `workerinput`, a session fixture writing beside the base temp "
        "folder, a strict xfail and a failing test (exit 1).",
    )


def _cov() -> Project:
    return Project(
        ["pytest-cov", "coverage"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\npythonpath = .\n",
            "mypkg/__init__.py": _d('''
                """A package with statements that run at import time."""
                from .core import add, classify

                VERSION = (1, 2, 3)
                NAME = "mypkg"
                REGISTRY = {name: len(name) for name in ("a", "bb", "ccc")}
                if NAME.startswith("x"):
                    UNUSED = True  # never runs: a missing line in every report
            '''),
            "mypkg/core.py": _d('''
                import math

                CONSTANT = math.pi
                TABLE = [n * n for n in range(5)]


                def add(a, b):
                    return a + b


                def classify(n):
                    if n < 0:
                        return "negative"
                    if n == 0:
                        return "zero"
                    return "positive"


                def untested(x):
                    y = x * 2
                    return y


                class Shape:
                    def __init__(self, r):
                        self.r = r

                    def area(self):
                        return CONSTANT * self.r ** 2

                    def perimeter(self):
                        return 2 * CONSTANT * self.r
            '''),
            "mypkg/extra.py": _d('''
                """Imported only by tests/test_extra.py, at its module level."""
                GREETING = "hello"
                LENGTH = len(GREETING)


                def shout(text):
                    return text.upper()
            '''),
            "tests/test_core.py": _d('''
                from mypkg import add, classify


                def test_add():
                    assert add(2, 3) == 5


                def test_classify_negative():
                    assert classify(-1) == "negative"


                def test_classify_zero():
                    assert classify(0) == "zero"
            '''),
            "tests/test_shape.py": _d('''
                from mypkg.core import Shape


                def test_area():
                    assert Shape(1).area() > 3
            '''),
            "tests/test_extra.py": _d('''
                from mypkg.extra import LENGTH


                def test_length():
                    assert LENGTH == 5
            '''),
        },
        [*QUIET, "--cov=mypkg", "--cov-report=term-missing"],
        "classify",
        "`--cov=mypkg --cov-report=term-missing` on a package with module-level statements (run at import "
        "time), one module (`mypkg/extra.py`) imported only by a test module that `-k classify` deselects; "
        "the referee compares the coverage table line by line.",
    )


def _randomly() -> Project:
    values = _d('''
        import json
        import os
        import pathlib
        import random

        import pytest

        EXPECTED = pathlib.Path(__file__).with_name("expected_random.json")


        @pytest.mark.parametrize("i", range(3))
        def test_reseeded_random(i, request):
            """pytest-randomly reseeds `random` before each test: the values must be those of the set-up run."""
            value = [random.random() for _ in range(3)]
            if os.environ.get("MATRIX_SETUP"):
                data = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
                data[request.node.nodeid] = value
                EXPECTED.write_text(json.dumps(data, indent=1, sort_keys=True))
                return
            assert json.loads(EXPECTED.read_text())[request.node.nodeid] == value
    ''')
    return Project(
        ["pytest-randomly"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            "tests/test_alpha.py": _d('''
                def test_alpha_1():
                    pass


                def test_alpha_2():
                    pass


                def test_alpha_3():
                    pass


                class TestAlphaClass:
                    def test_m1(self):
                        pass

                    def test_m2(self):
                        pass

                    def test_m3(self):
                        pass
            '''),
            "tests/test_beta.py": _d('''
                import pytest


                @pytest.mark.parametrize("n", range(8))
                def test_beta(n):
                    assert n < 8
            '''),
            "tests/test_gamma.py": _d('''
                def test_gamma_1():
                    pass


                def test_gamma_2():
                    assert False, "fails wherever it is shuffled to"
            '''),
            "tests/test_values.py": values,
        },
        ["-p", "randomly", "--randomly-seed=12345", *NO_HYPOTHESIS, *NO_DJANGO, *NO_RERUN],
        "beta or values",
        "`-p randomly --randomly-seed=12345`: modules, classes and functions shuffled with a fixed seed (node "
        "IDs compared in order), and `random` reseeded before each test (a test checks the values against "
        "those recorded by a plain set-up run).",
        setup=[(["-p", "randomly", "--randomly-seed=12345", *NO_HYPOTHESIS, *NO_DJANGO, *NO_RERUN, "tests/test_values.py"], {"MATRIX_SETUP": "1"})],
    )


def _asyncio() -> Project:
    return Project(
        ["pytest-asyncio"],
        {
            "pytest.ini": _d('''
                [pytest]
                testpaths = tests
                asyncio_mode = auto
                asyncio_default_fixture_loop_scope = function
            '''),
            "tests/conftest.py": _d('''
                import asyncio

                import pytest


                @pytest.fixture
                async def resource():
                    await asyncio.sleep(0)
                    state = {"open": True}
                    yield state
                    state["open"] = False


                @pytest.fixture
                def sync_value():
                    return 41
            '''),
            "tests/test_async.py": _d('''
                import asyncio

                import pytest


                async def compute(x):
                    await asyncio.sleep(0.001)
                    return x + 1


                async def test_sleep():
                    await asyncio.sleep(0.01)


                async def test_gather():
                    assert await asyncio.gather(compute(1), compute(2)) == [2, 3]


                async def test_failing():
                    assert await compute(1) == 3


                def test_sync(sync_value):
                    assert sync_value == 41


                async def test_wait_for_timeout():
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)


                class TestAsyncClass:
                    async def test_method(self):
                        assert await compute(0) == 1

                    @pytest.mark.parametrize("n", [1, 2])
                    async def test_param(self, n):
                        assert await compute(n) == n + 1
            '''),
            "tests/test_fixtures.py": _d('''
                import asyncio

                import pytest

                LOOPS = []


                async def test_async_fixture(resource):
                    assert resource["open"]


                async def test_running_loop():
                    assert asyncio.get_running_loop().is_running()


                @pytest.mark.asyncio(loop_scope="module")
                async def test_fixture_module_loop_1():
                    LOOPS.append(asyncio.get_running_loop())
                    assert len(set(map(id, LOOPS))) == 1


                @pytest.mark.asyncio(loop_scope="module")
                async def test_fixture_module_loop_2():
                    # the same loop as test 1's when both run in one process (xdist may give them two workers)
                    LOOPS.append(asyncio.get_running_loop())
                    assert len(set(map(id, LOOPS))) == 1
            '''),
        },
        [*QUIET],
        "fixture",
        "`asyncio_mode = auto` and `asyncio_default_fixture_loop_scope` in the ini file: async tests, methods "
        "and parametrized coroutines, an async generator fixture from a conftest, a module-scoped loop shared "
        "by two tests, one failing coroutine (exit 1).",
    )


def _timeout(method: str) -> Project:
    files = {"pytest.ini": "[pytest]\ntestpaths = tests\n"}
    files["tests/test_quick.py"] = _d('''
        import time

        import pytest


        def test_quick_1():
            pass


        def test_quick_2():
            time.sleep(0.05)


        @pytest.mark.parametrize("n", range(4))
        def test_quick_param(n):
            assert n >= 0
    ''')
    if method == "signal":
        files["tests/test_slow.py"] = _d('''
            import time

            import pytest


            def test_sleeps_past_timeout():
                time.sleep(5)  # --timeout 1 ends it after one second: failed


            @pytest.mark.timeout(4)
            def test_marker_extends_timeout():
                time.sleep(1.2)  # past the global timeout, within its marker's


            @pytest.mark.timeout(0)
            def test_marker_disables_timeout():
                time.sleep(0.1)
        ''')
        args = [*QUIET, "--timeout", "1", "--timeout-method", "signal"]
        what = ("`--timeout 1 --timeout-method signal`: quick tests, one test sleeping past the timeout "
                "(failed by SIGALRM), one whose `timeout` marker extends it past the global value, one that "
                "disables it (exit 1).")
    else:
        files["tests/test_slow.py"] = _d('''
            import os
            import time

            import pytest


            @pytest.mark.timeout(3, method="thread")
            def test_within_thread_timeout():
                time.sleep(0.2)


            @pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ,
                                reason="the thread method ends the whole process: only in an xdist worker")
            def test_sleeps_past_thread_timeout():
                time.sleep(5)  # the timer thread dumps the stacks and os._exit(1)s the worker
        ''')
        args = [*QUIET, "--timeout", "1", "--timeout-method", "thread"]
        what = ("`--timeout 1 --timeout-method thread`: quick tests (a timer thread started and cancelled for "
                "each), a thread-method marker that does not fire; under `-n 2` one test sleeps past the "
                "timeout and the timer thread ends its worker with `os._exit(1)` (xdist reports the crash, "
                "exit 1); without xdist that test is skipped (it would end the run itself).")
    return Project(["pytest-timeout"], files, args, "quick", what)


def _rerunfailures() -> Project:
    return Project(
        ["pytest-rerunfailures"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            "tests/test_flaky.py": _d('''
                import pytest

                CALLS = {"flaky": 0, "marker": 0, "fixture": 0}


                def test_flaky_passes_on_rerun():
                    CALLS["flaky"] += 1
                    assert CALLS["flaky"] >= 2  # fails the first time in a process, passes on the rerun


                def test_always_fails():
                    assert False  # rerun twice, then failed


                @pytest.mark.flaky(reruns=1)
                def test_marker_reruns():
                    CALLS["marker"] += 1
                    assert CALLS["marker"] >= 2


                @pytest.fixture
                def flaky_fixture():
                    CALLS["fixture"] += 1
                    if CALLS["fixture"] < 2:
                        raise RuntimeError("set-up fails the first time")
                    return CALLS["fixture"]


                def test_flaky_setup(flaky_fixture):
                    assert flaky_fixture >= 2
            '''),
            "tests/test_stable.py": _d('''
                def test_stable_1():
                    pass


                def test_stable_2():
                    assert [1, 2] == [1, 2]
            '''),
        },
        [*NO_RANDOMLY, *NO_HYPOTHESIS, *NO_DJANGO, "--reruns", "2"],
        "stable",
        "`--reruns 2`: a test that fails once then passes (reports `rerun` then `passed`), one that always "
        "fails (two reruns, then failed), a `flaky(reruns=1)` marker, a fixture whose set-up fails once "
        "(exit 1).",
    )


def _hypothesis() -> Project:
    return Project(
        ["hypothesis"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            "tests/conftest.py": _d('''
                from hypothesis import HealthCheck, settings
                from hypothesis.database import DirectoryBasedExampleDatabase

                settings.register_profile(
                    "matrix",
                    max_examples=50,
                    deadline=None,
                    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
                    suppress_health_check=[HealthCheck.too_slow],
                )
            '''),
            "tests/test_props.py": _d('''
                from hypothesis import example, given
                from hypothesis import strategies as st


                @given(st.integers(), st.integers())
                def test_add_commutes(a, b):
                    assert a + b == b + a


                @given(st.lists(st.integers()))
                @example([3, 1, 2])
                def test_sort_idempotent(xs):
                    assert sorted(sorted(xs)) == sorted(xs)


                @given(st.text())
                def test_encode_roundtrip(s):
                    assert s.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass") == s
            '''),
            "tests/test_database.py": _d('''
                from hypothesis import given
                from hypothesis import strategies as st


                @given(st.integers())
                def test_found_in_database(x):
                    # fails for x >= 1000: the set-up run found and shrank it (x=1000) and saved it in
                    # .hypothesis/examples, from where every later run replays it first
                    assert x < 1000
            '''),
            "tests/test_stateful.py": _d('''
                from hypothesis import settings
                from hypothesis.stateful import RuleBasedStateMachine, invariant, rule


                class Counter(RuleBasedStateMachine):
                    def __init__(self):
                        super().__init__()
                        self.value = 0

                    @rule()
                    def increment(self):
                        self.value += 1

                    @invariant()
                    def non_negative(self):
                        assert self.value >= 0


                TestCounter = Counter.TestCase
                TestCounter.settings = settings(max_examples=10, stateful_step_count=5, deadline=None)
            '''),
        },
        [*NO_RANDOMLY, *NO_DJANGO, *NO_RERUN, "--hypothesis-profile=matrix"],
        "commutes or sort",
        "`--hypothesis-profile=matrix` (a conftest profile with a `DirectoryBasedExampleDatabase`, no "
        "deadline): `@given` tests with `@example`, a failing property whose shrunk example the set-up run "
        "saved in `.hypothesis/examples` (replayed first by every run: deterministic failure, exit 1), a "
        "stateful `RuleBasedStateMachine.TestCase` (a unittest class).",
        setup=[([*NO_RANDOMLY, *NO_DJANGO, *NO_RERUN, "--hypothesis-profile=matrix", "tests/test_database.py"], {})],
    )


def _django() -> Project:
    return Project(
        ["pytest-django", "Django"],
        {
            "pytest.ini": _d('''
                [pytest]
                DJANGO_SETTINGS_MODULE = mysite.settings
                testpaths = polls/tests
            '''),
            "manage.py": _d('''
                #!/usr/bin/env python
                import os
                import sys

                if __name__ == "__main__":
                    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
                    from django.core.management import execute_from_command_line

                    execute_from_command_line(sys.argv)
            '''),
            "mysite/__init__.py": "",
            "mysite/settings.py": _d('''
                from pathlib import Path

                BASE_DIR = Path(__file__).resolve().parent.parent
                SECRET_KEY = "plugin-matrix-not-a-secret"
                DEBUG = False
                ALLOWED_HOSTS = ["testserver"]
                INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "polls"]
                MIDDLEWARE = []
                ROOT_URLCONF = "mysite.urls"
                DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
                USE_TZ = True
                DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
            '''),
            "mysite/urls.py": _d('''
                from django.http import HttpResponse
                from django.urls import path


                def ping(request):
                    return HttpResponse("pong")


                urlpatterns = [path("ping/", ping)]
            '''),
            "polls/__init__.py": "",
            "polls/apps.py": _d('''
                from django.apps import AppConfig


                class PollsConfig(AppConfig):
                    name = "polls"
            '''),
            "polls/models.py": _d('''
                from django.db import models


                class Question(models.Model):
                    text = models.CharField(max_length=200)
                    votes = models.IntegerField(default=0)

                    def __str__(self):
                        return self.text
            '''),
            "polls/migrations/__init__.py": "",
            "polls/migrations/0001_initial.py": _d('''
                from django.db import migrations, models


                class Migration(migrations.Migration):
                    initial = True
                    dependencies = []
                    operations = [
                        migrations.CreateModel(
                            name="Question",
                            fields=[
                                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                                ("text", models.CharField(max_length=200)),
                                ("votes", models.IntegerField(default=0)),
                            ],
                        ),
                    ]
            '''),
            "polls/tests/__init__.py": "",
            "polls/tests/test_models.py": _d('''
                import pytest

                from polls.models import Question


                @pytest.mark.django_db
                def test_create_question():
                    Question.objects.create(text="why?")
                    assert Question.objects.count() == 1


                @pytest.mark.django_db(transaction=True)
                def test_transactional_db():
                    Question.objects.create(text="again?", votes=2)
                    assert Question.objects.get().votes == 2


                def test_str_without_db():
                    assert str(Question(text="what?")) == "what?"


                def test_db_access_blocked():
                    with pytest.raises(RuntimeError):
                        Question.objects.count()


                @pytest.mark.django_db
                def test_fails_in_db():
                    assert Question.objects.count() == 1  # the db is empty: failed
            '''),
            "polls/tests/test_views.py": _d('''
                import pytest


                def test_ping(client):
                    assert client.get("/ping/").content == b"pong"


                def test_settings_fixture(settings):
                    settings.DEBUG = True
                    from django.conf import settings as live

                    assert live.DEBUG is True


                @pytest.mark.django_db
                def test_user_model(django_user_model):
                    django_user_model.objects.create_user(username="u", password="p")
                    assert django_user_model.objects.count() == 1
            '''),
        },
        [*NO_RANDOMLY, *NO_HYPOTHESIS, *NO_RERUN],
        "ping or settings",
        "a Django project made in the test folder (`manage.py`, `mysite/settings.py`, an app with one model "
        "and its migration), `DJANGO_SETTINGS_MODULE` given in `pytest.ini`: `django_db` tests (one "
        "transactional) on a test database built by migrations, blocked db access, the `client`, `settings` "
        "and `django_user_model` fixtures, one failing db test (exit 1).",
    )


def _split() -> Project:
    durations = {
        "tests/test_alpha.py::test_alpha_1": 0.5,
        "tests/test_alpha.py::test_alpha_2": 0.1,
        "tests/test_alpha.py::test_alpha_3": 2.0,
        "tests/test_beta.py::test_beta_1": 0.3,
        "tests/test_beta.py::test_beta_2": 1.5,
        "tests/test_beta.py::TestBeta::test_m": 0.2,
        "tests/test_gamma.py::test_gamma[0]": 0.4,
        "tests/test_gamma.py::test_gamma[1]": 0.4,
        "tests/test_gamma.py::test_gamma[2]": 0.9,
        # test_gamma[3] and test_delta.py have no recorded duration: pytest-split uses the average
    }
    return Project(
        ["pytest-split"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            ".test_durations": json.dumps(durations, indent=2, sort_keys=True) + "\n",
            "tests/test_alpha.py": _d('''
                def test_alpha_1():
                    pass


                def test_alpha_2():
                    pass


                def test_alpha_3():
                    pass
            '''),
            "tests/test_beta.py": _d('''
                def test_beta_1():
                    pass


                def test_beta_2():
                    assert False


                class TestBeta:
                    def test_m(self):
                        pass
            '''),
            "tests/test_gamma.py": _d('''
                import pytest


                @pytest.mark.parametrize("n", range(4))
                def test_gamma(n):
                    pass
            '''),
            "tests/test_delta.py": _d('''
                def test_delta_new():
                    pass
            '''),
        },
        [*QUIET, "--splits", "2", "--group", "1"],
        "alpha or gamma",
        "`--splits 2 --group 1` with a `.test_durations` file (some tests without a recorded duration): "
        "the second group's tests are deselected by pytest-split's own hook; with `-k` the two deselections "
        "add up.",
    )


def _syrupy() -> Project:
    return Project(
        ["syrupy"],
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            "tests/test_snap.py": _d('''
                import pytest


                def test_dict(snapshot):
                    assert {"a": 1, "b": [1, 2]} == snapshot


                @pytest.mark.parametrize("n", [1, 2, 3])
                def test_param(snapshot, n):
                    assert list(range(n)) == snapshot


                class TestClass:
                    def test_method(self, snapshot):
                        assert "text" == snapshot
            '''),
            "tests/test_other.py": _d('''
                from syrupy.extensions.json import JSONSnapshotExtension


                def test_string(snapshot):
                    assert "hello\\nworld" == snapshot


                def test_json(snapshot):
                    assert {"k": [1, 2, 3]} == snapshot.use_extension(JSONSnapshotExtension)


                def test_two_snapshots(snapshot):
                    assert 1 == snapshot
                    assert "two" == snapshot
            '''),
        },
        [*QUIET],
        "param",
        "snapshot tests (amber and JSON extensions, parametrized, in a class, two snapshots in one test) "
        "whose `__snapshots__` the set-up run wrote with `--snapshot-update`; syrupy's report of used and "
        "unused snapshots (its exit status) under `-k`.",
        setup=[([*QUIET, "--snapshot-update"], {})],
    )


PROJECTS: dict[str, Callable[[], Project]] = {
    "xdist": _xdist,
    "cov": _cov,
    "randomly": _randomly,
    "asyncio": _asyncio,
    "timeout-signal": lambda: _timeout("signal"),
    "timeout-thread": lambda: _timeout("thread"),
    "rerunfailures": _rerunfailures,
    "hypothesis": _hypothesis,
    "django": _django,
    "split": _split,
    "syrupy": _syrupy,
}


# --------------------------------------------------------------------------------------------- set-up

def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: bootstrap.sh's source stamp: the wheel in build/wheels/cp3XY/ was built from this source state when
#: `.stamp-<stamp>` lies beside it (the same pipeline as scripts/bootstrap.sh).
_STAMP = ("{ git ls-files -s src CMakeLists.txt cmake pyproject.toml 2>/dev/null; "
          "git diff HEAD -- src CMakeLists.txt cmake pyproject.toml 2>/dev/null; "
          "git ls-files -o --exclude-standard src cmake 2>/dev/null | sort | xargs -r sha1sum; } | sha1sum | cut -c1-12")


def wheel_is_current(python: Path) -> bool:
    tag = subprocess.run([str(python), "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                         check=True, capture_output=True, text=True).stdout.strip()
    stamp = subprocess.run(["bash", "-c", _STAMP], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
    return (REPO / "build" / "wheels" / tag / f".stamp-{stamp}").exists()


def make_venv(build: bool = True) -> Path:
    """The venv's interpreter, with PINS and the project's wheel installed. With `build`, a wheel older than
    the source (no matching stamp) is rebuilt first by scripts/bootstrap.sh (which also installs the pins)."""
    python = suites._venv(NAME)
    if build and not wheel_is_current(python):
        _log("the wheel in build/wheels is older than the source: scripts/bootstrap.sh rebuilds it")
        subprocess.run(["bash", str(REPO / "scripts" / "bootstrap.sh"), str(python.parent.parent),
                        *(f"{k}=={v}" for k, v in PINS.items())], check=True)
    pins = " ".join(f"{k}=={v}" for k, v in sorted(PINS.items()))
    marker = python.parent.parent / f".ready-{hashlib.sha256(pins.encode()).hexdigest()[:16]}"
    if not marker.exists():
        _log(f"installing {len(PINS)} pinned distributions into {python.parent.parent}")
        suites._pip(python, *(f"{k}=={v}" for k, v in PINS.items()))
        for old in python.parent.parent.glob(".ready-*"):
            old.unlink()
        marker.touch()
    suites.install_plugin(python)
    return python


def installed_versions(python: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *PINS, "pytest-fastcollect"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def write_project(name: str, project: Project, python: Path) -> Path:
    """Write the project's files into a fresh folder and run its set-up commands (plugin off)."""
    folder = PROJECTS_DIR / name
    if folder.exists():
        shutil.rmtree(folder)
    for rel, text in project.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith("test_") and path.suffix == ".py":
            text = IMPORT_MARKER + text
        path.write_text(text, encoding="utf-8")
    for args, extra_env in project.setup:
        with tempfile.TemporaryDirectory(prefix="fastcollect-matrix-setup-") as runtime:
            env = {**_base_env(runtime), **extra_env}
            proc = subprocess.run([str(python), "-m", "pytest", "-p", "no:fastcollect", *args], cwd=folder,
                                  env=env, capture_output=True, text=True, timeout=600)
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        _log(f"  set-up {name}: pytest {' '.join(args)} -> exit {proc.returncode}: {last}")
    return folder


def _base_env(runtime: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTCOLLECT_PARITY", "PYTEST_"))}
    env["XDG_RUNTIME_DIR"] = runtime
    return env


# --------------------------------------------------------------------------------------------- running

@dataclass
class Row:
    plugin: str
    config: str
    command: str
    cwd: str
    exit: int | str
    parity: str
    differences: list[str]
    flaky: list[str]
    seconds: float
    killed: list[int]
    #: the referee's per-side lines ("plain: 5 runs, items [16], exit codes {1: 5}, ...; '1 failed, ...'")
    plain_side: str
    plugin_side: str
    #: -k rows: the `fastcollect: -k/-m: ...` line of one plugin-side run made right after the referee
    probe: str
    output: str
    #: a row not served by the daemon: the same referee run again with --plugin-arg=-v (run_row)
    diagnosis: dict[str, object] = field(default_factory=dict)


def _daemon_record_env(python: Path, folder: Path) -> str:
    code = ("import sys; from pathlib import Path; "
            "from pytest_fastcollect.parity.referee import daemon_record_path; "
            "print(daemon_record_path(Path(sys.argv[1])))")
    return subprocess.run([str(python), "-c", code, str(folder)], check=True, capture_output=True,
                          text=True).stdout.strip()


def _pids_with_runtime(runtime: str) -> list[int]:
    """Processes whose environment has XDG_RUNTIME_DIR=runtime: only those this referee run started."""
    needle = f"XDG_RUNTIME_DIR={runtime}".encode()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_daemons(python: Path, folder: Path, args: list[str], env: dict[str, str], runtime: str) -> list[int]:
    """Stop every daemon of this referee run; returns the pids that had to be killed."""
    record_env = {**env, "FASTCOLLECT_PARITY_RECORD": _daemon_record_env(python, folder)}
    for e in (record_env, env):
        subprocess.run([str(python), "-m", "pytest", *args, "-p", "pytest_fastcollect.parity.recorder",
                        "--daemon-stop"], cwd=folder, env=e, capture_output=True, text=True, timeout=120)
    sock_dir = Path(runtime) / "pytest-fastcollect"
    pids: set[int] = set()
    for pid_file in sock_dir.glob("*.pid"):
        try:
            pids.add(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids | set(_pids_with_runtime(runtime))):
        time.sleep(0.2)
    killed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        targets = [p for p in sorted(pids | set(_pids_with_runtime(runtime))) if _alive(p)]
        for pid in targets:
            try:
                os.kill(pid, sig)
                if pid not in killed:
                    killed.append(pid)
            except ProcessLookupError:
                pass
        if targets:
            time.sleep(1.0)
    return killed


def probe_selection(python: Path, folder: Path, pytest_args: list[str], env: dict[str, str]) -> str:
    """One plugin-side run with the referee's command line (the recorder's -p is part of the records' key):
    its `-k/-m` header line, and which test modules it really imported (from `.imports.log`)."""
    log = folder / IMPORT_LOG
    log.unlink(missing_ok=True)
    check = subprocess.run([str(python), "-m", "pytest", *pytest_args, "--no-fastcollect-auto-daemon", "-p",
                            "pytest_fastcollect.parity.recorder"], cwd=folder, env=env, capture_output=True,
                           text=True, timeout=600)
    header = next((ln for ln in check.stdout.splitlines() if ln.startswith("fastcollect: -k/-m:")), "(no -k/-m line)")
    imported = set(log.read_text().split()) if log.exists() else set()
    modules = sorted(p.stem for p in folder.rglob("test_*.py"))
    left = [m for m in modules if not any(i.rsplit(".", 1)[-1] == m for i in imported)]
    return f"{header} | really left unimported: {len(left)} of {len(modules)} test modules ({', '.join(left) or 'none'})"


def probe_daemon(python: Path, folder: Path, pytest_args: list[str], env: dict[str, str]) -> str:
    """One more run through the referee's daemon (its environment, the recorder's record path included, is
    the daemon's key) with -v: the `fastcollect: run by the warm daemon ...` or `... ran locally (...)` line."""
    record_env = {**env, "FASTCOLLECT_PARITY_RECORD": _daemon_record_env(python, folder)}
    check = subprocess.run([str(python), "-m", "pytest", *pytest_args, "-p", "pytest_fastcollect.parity.recorder",
                            "--fastcollect-auto-daemon", "-v"], cwd=folder, env=record_env, capture_output=True,
                           text=True, timeout=600)
    return next((ln for ln in check.stdout.splitlines()
                 if ln.startswith(("fastcollect: run by the warm daemon", "fastcollect: daemon:"))), "(no daemon line)")


def referee_argv(project: Project, config: Config, repeat: int) -> tuple[list[str], list[str]]:
    """(the referee's own arguments, the pytest arguments after `--`)."""
    pytest_args = [*project.args, *config.extra(project)]
    return [".", *config.referee, "--repeat", str(repeat), *config.plugin_args, "--timeout", "600"], pytest_args


def run_row(name: str, project: Project, folder: Path, config: Config, python: Path, repeat: int,
            diagnose: bool = True) -> Row:
    """One referee run in a fresh socket folder, its daemons stopped after. With `diagnose`, a row whose plugin
    side was not served by the daemon is run once more with `--plugin-arg=-v` (the plugin side then prints
    `fastcollect: daemon: ran locally (REASON)`, which the referee quotes); that row is kept in `diagnosis`."""
    own, pytest_args = referee_argv(project, config, repeat)
    argv = [str(python), "-m", "pytest_fastcollect.parity", *own, "--", *pytest_args]
    shown = f"python -m pytest_fastcollect.parity {shlex.join(own)} -- {shlex.join(pytest_args)}"
    runtime = tempfile.mkdtemp(prefix="fastcollect-matrix-")
    os.chmod(runtime, 0o700)
    env = _base_env(runtime)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=ROW_TIMEOUT)
        code: int | str = proc.returncode
        output = proc.stdout + ("\n[stderr]\n" + proc.stderr if proc.stderr.strip() else "")
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    seconds = time.perf_counter() - t0
    probe = ""
    if config.probe == "k":
        probe = probe_selection(python, folder, pytest_args, env)
    elif config.probe == "daemon":
        probe = probe_daemon(python, folder, pytest_args, env)
    try:
        killed = stop_daemons(python, folder, pytest_args, env, runtime)
        logs = sorted((Path(runtime) / "pytest-fastcollect").glob("*.log"))
        if code != 0 and logs:  # keep the daemons' logs of a failing row
            keep = LOGS / f"{name}-{config.name.replace(' ', '_')}"
            shutil.rmtree(keep, ignore_errors=True)
            keep.mkdir(parents=True)
            for log in logs:
                shutil.copy(log, keep / log.name)
            output += f"\n[daemon logs kept in {keep}]\n"
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    lines = output.splitlines()
    parity = next((ln for ln in lines if ln.startswith("parity:")), (lines or ["(no output)"])[-1])
    differences = [ln[4:] for ln in lines if ln.startswith("  - ")]
    flaky = [ln[4:] for ln in lines if ln.startswith("  ~ ")]
    plain = next((ln.strip() for ln in lines if ln.strip().startswith("plain:")), "")
    plugin = next((ln.strip() for ln in lines if ln.strip().startswith("plugin:") and " runs, " in ln), "")
    served = next((ln.strip() for ln in lines if "served by the warm daemon" in ln), "")
    if served:
        plugin += f"; {served.removeprefix('plugin: ')}"
    row = Row(name, config.name, shown, str(folder), code, parity, differences, flaky, round(seconds, 1),
              killed, plain, plugin, probe, output)
    if diagnose and any("not served by the daemon" in d for d in differences):
        verbose = Config(config.name, config.referee, [*config.plugin_args, "--plugin-arg=-v"], config.extra)
        again = run_row(name, project, folder, verbose, python, repeat, diagnose=False)
        row.diagnosis = {"command": again.command, "exit": again.exit, "parity": again.parity,
                         "differences": again.differences}
    return row


# --------------------------------------------------------------------------------------------- reports

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _plain_cell(line: str) -> str:
    """"plain: 5 runs, items [16], exit codes {1: 5}, median 0.83s; '1 failed, 14 passed'" -> "exit 1 (5 of 5); 1 failed, 14 passed"."""
    if "exit codes" not in line:
        return line
    codes = line.split("exit codes ", 1)[1].split("}", 1)[0].strip("{")
    summary = line.rsplit("; ", 1)[-1].strip("'\"")
    return f"exit {codes}; {summary}"


def _notes(r: Row) -> str:
    notes = []
    if "served by the warm daemon" in r.plugin_side:
        notes.append(r.plugin_side.rsplit("; ", 1)[-1])
    if r.probe.startswith("fastcollect: run by the warm daemon"):
        level = "level 0: project imported fresh" if " from level 0 " in r.probe else "level 1: project warm"
        why = r.probe.split("; ", 1)[1][:-1] if " from level 0 " in r.probe and "; " in r.probe else ""
        notes.append(f"-v run after: {level}" + (f" ({why})" if why else ""))
    elif r.probe.startswith("fastcollect: daemon:") or r.probe == "(no daemon line)":
        notes.append(f"-v run after: {r.probe}")
    elif r.probe:
        header, _, real = r.probe.partition(" | ")
        notes.append(f"header: {header.removeprefix('fastcollect: -k/-m: ').split(';')[0]}")
        if real:
            notes.append(real)
    if r.flaky:
        notes.append(f"{len(r.flaky)} flaky on both sides")
    return "".join(f"<br>{_cell(n)}" for n in notes)


def markdown(rows: Sequence[Row], projects: dict[str, Project], pins: dict[str, str], total: float,
             repeat: int, source: dict[str, str]) -> str:
    dirty = " (with uncommitted source changes)" if source["source_changes"] else ""
    out = [f"Run {source['started']}: {len(rows)} referee runs, `--repeat {repeat}` each, "
           f"{os.cpu_count()} cores, Python {platform.python_version()}, wheel of commit "
           f"{source['commit'][:7]}{dirty}, total {total / 60:.1f} min.", ""]
    out += ["| plugin | configuration | referee command (in the plugin's project) | exit | result | plain side | s |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        cmd = r.command.replace("python -m pytest_fastcollect.parity ", "")
        out.append(f"| {r.plugin} | {r.config} | `{_cell(cmd)}` | {r.exit} | {_cell(r.parity)}{_notes(r)} | "
                   f"{_cell(_plain_cell(r.plain_side))} | {r.seconds:.0f} |")
    failing = [r for r in rows if r.exit != 0]
    if failing:
        out += ["", "Differences:", ""]
        for r in failing:
            out.append(f"- {r.plugin}, {r.config}:")
            out += [f"  - `{_cell(d)}`" for d in r.differences] or [f"  - {_cell(r.parity)}"]
            if r.diagnosis:
                out.append(f"  - again with `--plugin-arg=-v`: exit {r.diagnosis['exit']}, {_cell(str(r.diagnosis['parity']))}")
                out += [f"    - `{_cell(str(d))}`" for d in r.diagnosis["differences"]]  # type: ignore[union-attr]
    out += ["", "| plugin | distributions (pinned) | what the project exercises | `-k` expression |", "|---|---|---|---|"]
    for name, p in projects.items():
        dists = ", ".join(f"{d} {pins.get(d, '?')}" for d in p.plugins)
        out.append(f"| {name} | {dists} | {_cell(p.exercises)} | `{_cell(p.kexpr)}` |")
    return "\n".join(out) + "\n"


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], metavar="NAME", choices=sorted(PROJECTS),
                        help="run only this plugin's project (repeatable)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME",
                        choices=[c.name for c in CONFIGS], help="run only this configuration (repeatable)")
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="the referee's --repeat (default 5)")
    parser.add_argument("--markdown", type=Path, help="write the markdown tables here instead of stdout")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--setup-only", action="store_true", help="make the venv and the projects, run nothing")
    parser.add_argument("--no-build", action="store_true",
                        help="install the wheel in build/wheels as it is, even when it is older than the source")
    parser.add_argument("--list", action="store_true", help="print the plugins and configurations and exit")
    ns = parser.parse_args(argv)
    if ns.list:
        for name, make in PROJECTS.items():
            print(f"{name}: {make().exercises}")
        print("configurations: " + ", ".join(c.name for c in CONFIGS))
        return 0
    if ns.repeat < 1:
        parser.error("--repeat takes a whole number >= 1")
    t_start = time.perf_counter()
    source = {"started": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": _git("rev-parse", "HEAD"),
              "source_changes": _git("status", "--porcelain", "--", "src", "CMakeLists.txt", "cmake", "pyproject.toml")}
    try:
        python = make_venv(build=not ns.no_build)
        pins = installed_versions(python)
    except (subprocess.CalledProcessError, SystemExit) as exc:
        _log(f"set-up failed: {exc}")
        return 2
    _log("installed: " + ", ".join(f"{k} {v}" for k, v in pins.items()))
    names = ns.only or list(PROJECTS)
    projects = {n: PROJECTS[n]() for n in names}
    folders = {n: write_project(n, p, python) for n, p in projects.items()}
    if ns.setup_only:
        return 0
    configs = [c for c in CONFIGS if not ns.config or c.name in ns.config]
    rows: list[Row] = []
    for name, project in projects.items():
        for config in configs:
            row = run_row(name, project, folders[name], config, python, ns.repeat)
            rows.append(row)
            _log(f"{name:>15} | {config.name:<12} | exit {row.exit} | {row.parity} | {row.seconds:.0f}s"
                 f"{' | killed ' + str(row.killed) if row.killed else ''}\n{'':>15}   (cd {row.cwd} && {row.command})")
            for d in row.differences:
                _log(f"{'':>15}   - {d}")
            if row.diagnosis:
                _log(f"{'':>15}   again with --plugin-arg=-v: exit {row.diagnosis['exit']}, {row.diagnosis['parity']}")
                for d in row.diagnosis["differences"]:  # type: ignore[union-attr]
                    _log(f"{'':>15}     - {d}")
    total = time.perf_counter() - t_start
    doc = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(), **source,
        "cpus": os.cpu_count(), "repeat": ns.repeat, "pins": pins, "total_seconds": round(total, 1),
        "rows": [r.__dict__ for r in rows],
    }
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    text = markdown(rows, projects, pins, total, ns.repeat, source)
    if ns.markdown:
        ns.markdown.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    _log(f"results: {ns.json}; total {total:.0f}s")
    return 0 if all(r.exit == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
