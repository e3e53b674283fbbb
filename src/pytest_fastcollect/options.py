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
    parser.addini("fastcollect", type="bool", default=True, help="Enable pytest-fastcollect (default true).")
    parser.addini(
        "fastcollect_cache", type="bool", default=True, help="Use the SQLite discovery cache (default true)."
    )


def is_enabled(config: pytest.Config, options: Any) -> bool:
    """The command line wins over the ini key; both default to on. `options`: config.option, or
    config.known_args_namespace before it is set."""
    flag = getattr(options, "fastcollect", None)
    if flag is not None:
        return bool(flag)
    return bool(config.getini("fastcollect"))
