"""`pytest --daemon-watch`: the loop's inputs from pytest's config, before the initial conftests load.

Called from daemon/session.py's before_run (pytest_load_initial_conftests), which leaves with the exit code.
The selection's test files come from the C++ walker with pytest's path rules (paths.path_rules), walked
again after every change; the project's Python files from the same walker with `*.py` over the rootdir.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace

import pytest

from ..discovery import walk
from ..paths import path_rules, positional_args
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
        narrowable=not getattr(options, "pyargs", False) and not any("::" in p for p in positional),
        cache=not config.pluginmanager.is_blocked("cacheprovider"),
        keyword=getattr(options, "keyword", "") or None,
    )


def run(config: pytest.Config, parser: pytest.Parser) -> int:
    """The watch loop for this invocation; its exit code (see loop.py)."""
    _check(config)
    command = command_of(config, parser)
    options = config.known_args_namespace
    rules = path_rules(config, command.positional, options)
    rootdir = command.rootdir

    def selection() -> list[str]:
        return [f for f in walk(rules, 1).files if f.endswith(".py")]

    def project_files() -> list[str]:
        return [f for f in walk(replace(rules, roots=[rootdir], python_files=["*.py"]), 0).files if f.endswith(".py")]

    cache_dir = os.path.join(rootdir, str(config.getini("cache_dir")))
    outside = [r for r in rules.roots if not (r == rootdir or r.startswith(rootdir.rstrip(os.sep) + os.sep))]
    watched = [rootdir, *outside]
    interrupt = bool(getattr(options, "daemon_watch_interrupt", False))
    return Watch(command, selection, project_files, watchfiles_watcher(watched, [cache_dir]),
                 interrupt=interrupt, ignore_dirs=[cache_dir], roots=watched).main()
