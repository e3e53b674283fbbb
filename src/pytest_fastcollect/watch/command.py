"""`pytest --daemon-watch`: the loop's inputs from pytest's config, before the initial conftests load.

Called from daemon/session.py's before_run (pytest_load_initial_conftests), which leaves with the exit code.
The selection's test files come from the C++ walker with pytest's path rules (paths.path_rules), walked
again after every change; the project's Python files from the same walker with `*.py` over the rootdir.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import replace
from typing import Callable

import pytest

from ..discovery import walk
from ..paths import PathRules, path_rules, positional_args
from .changes import ProjectScan, WatchPath
from .loop import Command, Watch, interpreter_prefix, watchfiles_watcher

WATCH_FLAGS = ("--daemon-watch", "--daemon-watch-interrupt")


def _check(config: pytest.Config) -> None:
    """UsageError for what would make every run a watch loop again, and for a missing watchfiles."""
    for where, text in (("PYTEST_ADDOPTS", os.environ.get("PYTEST_ADDOPTS", "")),
                        ("the ini file's addopts", " ".join(str(a) for a in config.getini("addopts")))):
        if "--daemon-watch" in text:
            raise pytest.UsageError(f"--daemon-watch in {where}: give it on the command line only")
    if importlib.util.find_spec("watchfiles") is None:
        raise pytest.UsageError("--daemon-watch needs watchfiles: pip install 'pytest-fastcollect[watch]'")


def command_of(config: pytest.Config, parser: pytest.Parser) -> Command:
    """The runs' Command from this invocation (its arguments less the watch flags)."""
    args = [str(a) for a in config.invocation_params.args if str(a) not in WATCH_FLAGS]
    positional = positional_args(parser, args)
    options = config.known_args_namespace
    return Command(
        prefix=interpreter_prefix(),
        args=args,
        positional=positional,
        rootdir=str(config.rootpath),
        cwd=str(config.invocation_params.dir),
        cache=not config.pluginmanager.is_blocked("cacheprovider"),
        keyword=getattr(options, "keyword", "") or None,
    )


#: pytest's own pytest_collect_file implementations: python_files modules, and doctest's text files (its
#: modules only with --doctest-modules, checked apart).
BUILTIN_COLLECTORS = frozenset({"_pytest.python", "_pytest.doctest"})


def startup_files(rootdir: str) -> list[str]:
    """Module files of the project (under rootdir, not in a venv there) this process imported before any
    conftest (entry-point plugins of the project itself, e.g. an editable install with a pytest11 entry
    point)."""
    out = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and _in_project(rootdir, os.path.abspath(path)):
            out.append(os.path.abspath(path))
    return out


def python_collector(config: pytest.Config) -> str | None:
    """Why any Python file may be collected on its own (then an edit outside the test files runs the whole
    selection): --doctest-modules, or a loaded plugin's pytest_collect_file other than pytest's."""
    if getattr(config.known_args_namespace, "doctestmodules", False):
        return "--doctest-modules"
    for impl in config.pluginmanager.hook.pytest_collect_file.get_hookimpls():
        name = getattr(impl.plugin, "__name__", "") or impl.plugin_name
        if name not in BUILTIN_COLLECTORS:
            return f"the plugin {impl.plugin_name}"
    return None


#: Options whose value names a file or folder the run writes (pytest's junitxml and resultlog/report-log,
#: pytest-cov's `--cov-report TYPE:PATH`): never a change that starts a run.
OUTPUT_OPTIONS = ("--junitxml", "--junit-xml", "--report-log", "--result-log", "--cov-report")


def output_paths(args: list[str], cwd: str) -> list[str]:
    """Absolute paths that the runs of `args` write (OUTPUT_OPTIONS), to be ignored as changes."""
    out = []
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name not in OUTPUT_OPTIONS:
            continue
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
        if name == "--cov-report":
            value = value.partition(":")[2]  # html:DIR, xml:PATH, ...; a bare type writes its default name
        if value:
            out.append(os.path.abspath(os.path.join(cwd, value)))
    return out


def pytest_cache_dir(config: pytest.Config) -> str:
    """pytest's cache_dir as its cache plugin resolves it (Cache.cache_dir_from_config: the ini value, `~` and
    variables expanded, relative to rootdir); rootdir/.pytest_cache when that plugin is off (-p
    no:cacheprovider: its ini key is not registered)."""
    try:
        from _pytest.cacheprovider import Cache

        return str(Cache.cache_dir_from_config(config, _ispytest=True))
    except Exception:  # noqa: BLE001 - (ValueError: unknown ini key; a private API that moved)
        return os.path.join(str(config.rootpath), ".pytest_cache")


def watch_paths(config: pytest.Config) -> list[WatchPath]:
    """The ini key `fastcollect_watch_paths` parsed (changes.WatchPath); UsageError for a bad line."""
    out = []
    for line in config.getini("fastcollect_watch_paths") or []:
        try:
            out.append(WatchPath.parse(str(line)))
        except ValueError as exc:
            raise pytest.UsageError(f"fastcollect_watch_paths: {exc}") from None
    return out


def _in_project(rootdir: str, path: str) -> bool:
    """`path` is under rootdir and not inside a virtual environment there (a folder with pyvenv.cfg)."""
    prefix = rootdir.rstrip(os.sep) + os.sep
    if path != rootdir and not path.startswith(prefix):
        return False
    folder = os.path.dirname(path)
    while len(folder) > len(rootdir):
        if os.path.isfile(os.path.join(folder, "pyvenv.cfg")):
            return False
        folder = os.path.dirname(folder)
    return True


def python_files(rules: PathRules, folders: list[str]) -> list[str]:
    """Every `.py` file under `folders` by pytest's recursion rules (norecursedirs, virtualenvs), sorted.
    One walk per folder: with an initial path inside a venv under rootdir (--pyargs), one walk of both would
    enter the whole venv on its way there."""
    out: list[str] = []
    for folder in folders:
        out += [f for f in walk(replace(rules, roots=[folder], python_files=["*.py"]), 0).files if f.endswith(".py")]
    return sorted(set(out))


def watched_folders(rootdir: str, roots: list[str]) -> list[str]:
    """rootdir, and for each initial path outside the project (`--pyargs` tests in an installed package,
    also in a venv below rootdir) the folder of its top-level package, so that the package's conftests and
    modules are watched and scanned too."""
    out = [rootdir]
    for root in roots:
        if _in_project(rootdir, root):
            continue
        folder = root if os.path.isdir(root) else os.path.dirname(root)
        while os.path.isfile(os.path.join(os.path.dirname(folder), "__init__.py")):
            folder = os.path.dirname(folder)
        if folder not in out:
            out.append(folder)
    return out


def run(config: pytest.Config, parser: pytest.Parser) -> int:
    """The watch loop for this invocation; its exit code (see loop.py)."""
    _check(config)
    command = command_of(config, parser)
    options = config.known_args_namespace
    rules = path_rules(config, command.positional, options)
    rootdir = command.rootdir

    def selection() -> list[str]:
        return [f for f in walk(rules, 1).files if f.endswith(".py")]

    watched = watched_folders(rootdir, rules.roots)

    def project_files() -> list[str]:
        return python_files(rules, watched)

    project = ProjectScan(rootdir, [], startup_files(rootdir), python_collector(config))
    interrupt = bool(getattr(options, "daemon_watch_interrupt", False))
    ignore = [pytest_cache_dir(config), *output_paths(command.args, command.cwd)]
    return Watch(command, selection, project_files, watchfiles_watcher(watched, ignore),
                 interrupt=interrupt, ignore_dirs=ignore, roots=watched, project=project,
                 watch_paths=watch_paths(config), spawn=early_spawn(config, command)).main()


def early_spawn(config: pytest.Config, command: Command) -> Callable[[list[str], str], subprocess.Popen]:
    """How the loop starts a run: subprocess.Popen, after writing the early hand-off's index entry for its
    exact command (../early.py), so that the run, whose arguments differ from every run before, is handed
    to the daemon before it imports pytest. The entry names the daemon of the watched command's key (the
    runs add options, never positional arguments); the run's child checks it as for any early run. Without
    a usable daemon folder, or with the daemon or the early hand-off off: plain Popen."""

    def plain(argv: list[str], cwd: str) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=cwd)

    try:
        from .. import early
        from ..daemon.client import target
        from ..daemon.session import auto_off_reason

        if (auto_off_reason(config, config.known_args_namespace) is not None
                or not config.getini("fastcollect_early_handoff") or not early.allowed()):
            return plain
        tgt = target(config, command.positional, create=True)
    except Exception:  # noqa: BLE001 - the runs are served as before, after pytest's start-up
        return plain

    def spawn(argv: list[str], cwd: str) -> subprocess.Popen:
        try:
            early.remember(str(tgt.files.folder), tgt.key, True, (argv, os.path.realpath(cwd), os.environ))
        except OSError:
            pass
        return subprocess.Popen(argv, cwd=cwd)

    return spawn
