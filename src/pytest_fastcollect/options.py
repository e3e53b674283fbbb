"""Command-line flags and ini keys of pytest-fastcollect (names kept from the earlier Rust plugin).

Only options whose behaviour exists are registered; see ../../DESIGN.md (shared/) for the full table.
"""

from __future__ import annotations

from typing import Any

import pytest

GROUP = "fastcollect"


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def add_options(parser: pytest.Parser) -> None:
    """Register the plugin's flags and ini keys (called from pytest_addoption)."""
    group = parser.getgroup(GROUP, "fast collection (pytest-fastcollect)")
    group.addoption(
        "--no-fastcollect",
        action="store_false",
        dest="fastcollect",
        default=None,
        help="Turn pytest-fastcollect off for this run (ini: fastcollect = false). "
        "`-p no:fastcollect` also unloads it.",
    )
    group.addoption(
        "--fastcollect-threads",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="Scanner threads (default 0: one per core but one, which pytest keeps).",
    )
    group.addoption(
        "--no-fastcollect-cache",
        action="store_false",
        dest="fastcollect_cache",
        default=None,
        help="Do not read or write the discovery cache (ini: fastcollect_cache = false).",
    )
    group.addoption(
        "--fastcollect-cache-clear",
        action="store_true",
        default=False,
        help="Delete the discovery cache before anything is scanned, then rebuild it.",
    )
    group.addoption(
        "--fastcollect-strict",
        action="store_true",
        dest="fastcollect_strict",
        default=None,
        help="With -k/-m, import every test file, even one whose recorded collection holds no selected "
        "test (ini: fastcollect_strict).",
    )
    group.addoption(
        "--fastcollect-auto-daemon",
        action="store_true",
        dest="fastcollect_auto_daemon",
        default=None,
        help="Use the warm daemon, and start one when none runs (default on; off when CI is set).",
    )
    group.addoption(
        "--no-fastcollect-auto-daemon",
        action="store_false",
        dest="fastcollect_auto_daemon",
        help="Neither use nor start the warm daemon for this run (ini: fastcollect_auto_daemon = false).",
    )
    group.addoption(
        "--fastcollect-daemon-fresh",
        action="store_true",
        dest="fastcollect_daemon_fresh",
        default=False,
        help="Have the warm daemon serve this run from level 0: pytest warm, the project imported fresh "
        "(what a run with a coverage plugin gets; to rule the warm project out).",
    )
    group.addoption(
        "--fastcollect-only",
        action="append",
        metavar="FILE",
        default=None,
        help="Collect only this test file of the run's selection (repeatable; the paths given stay the "
        "run's initial paths: rootdir, conftests and node IDs as in the whole run). Watch mode's narrowed runs.",
    )
    group.addoption(
        "--fastcollect-affected",
        action="store_true",
        default=False,
        help="Run only the test files that the files changed since the last --fastcollect-affected run can "
        "reach (watch mode's rule), and those with tests that failed last; the whole selection the first time.",
    )
    group.addoption(
        "--fastcollect-affected-since",
        metavar="REF",
        default=None,
        help="Like --fastcollect-affected, for the files that differ from the git reference REF (and the "
        "untracked ones).",
    )
    group.addoption(
        "--daemon-watch",
        action="store_true",
        default=False,
        help="Watch mode: run the selection, then on each saved change re-run, through the warm daemon, the "
        "tests the change can reach (keys on a terminal: a all, f failed, p file filter, t name filter, "
        "Enter re-run, q quit; Ctrl-C leaves with the last exit code). Needs watchfiles "
        "(pip install 'pytest-fastcollect[watch]').",
    )
    group.addoption(
        "--daemon-watch-interrupt",
        action="store_true",
        default=False,
        help="With --daemon-watch: a change during a run stops that run and starts the next one (default: "
        "the change is queued for one more run).",
    )
    for name, what in (
        ("start", "Start the warm daemon for this project (warm-up with the given paths and options), wait "
         "until it is warm, print its status and exit"),
        ("stop", "Stop this project's daemon and exit"),
        ("status", "Print this project's daemon status and exit (exit code 1: none runs)"),
        ("health", "Check this project's daemon, print PASS/FAIL per check and exit (1 if any fails)"),
        ("reload", "Make this project's daemon rebuild its warm state, and exit"),
    ):
        group.addoption(f"--daemon-{name}", action="store_true", default=False, help=what + ".")
    parser.addini("fastcollect", type="bool", default=True, help="Enable pytest-fastcollect (default true).")
    parser.addini(
        "fastcollect_cache", type="bool", default=True, help="Use the SQLite discovery cache (default true)."
    )
    parser.addini(
        "fastcollect_strict",
        type="bool",
        default=False,
        help="Import every test file under -k/-m (default false: files with no selected test are skipped).",
    )
    parser.addini(
        "fastcollect_auto_daemon",
        type="bool",
        default=True,
        help="Use and auto-start the warm daemon (default true; the CI environment variable turns it off).",
    )
    parser.addini(
        "fastcollect_early_handoff",
        type="bool",
        default=True,
        help="Hand a run the warm daemon served before to it before pytest is imported (default true; also "
        "off with PYTEST_FASTCOLLECT_EARLY=0).",
    )
    parser.addini(
        "fastcollect_watch_paths",
        type="linelist",
        default=[],
        help="Watch mode and --fastcollect-affected: 'PATTERN: TARGET ...' lines mapping files that are not "
        "Python (fnmatch patterns relative to rootdir) to the test files they feed (default: such a change "
        "runs the whole selection).",
    )
    parser.addini(
        "fastcollect_daemon_idle_timeout",
        default="1800",
        help="Seconds of no requests after which the daemon exits (default 1800; 0 = never).",
    )
    parser.addini(
        "fastcollect_daemon_max_memory",
        default="0",
        help="MiB of resident memory above which an idle daemon restarts itself (default 0 = no limit).",
    )


def is_enabled(config: pytest.Config, options: Any) -> bool:
    """The command line wins over the ini key; both default to on. `options`: config.option, or
    config.known_args_namespace before it is set."""
    flag = getattr(options, "fastcollect", None)
    if flag is not None:
        return bool(flag)
    return bool(config.getini("fastcollect"))
