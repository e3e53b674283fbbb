"""`--fastcollect-only FILE`: the run's selection restricted to some of its test files (watch mode's narrowed
runs).

The command line keeps its paths, so the rootdir, the ini file, the initial conftests, every directory's
conftest and the node IDs are the whole selection's, and the warm daemon that serves the whole selection
serves this run too (the daemon key has the initial paths). Collection skips every other file by
`pytest_ignore_collect` (pytest's hook for `--ignore`: _pytest/main.py), so they are neither imported nor
reported; directories are still entered, and `__init__.py` and `conftest.py` are never skipped (packages
and conftests load as in the whole run). The files given must be paths; relative ones are taken from the
invocation directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Files that are part of a folder's set-up rather than test files of the selection.
NEVER_SKIPPED = frozenset({"__init__.py", "conftest.py"})


class OnlyFiles:
    """Registered in pytest_configure when --fastcollect-only is given."""

    NAME = "fastcollect-only"

    def __init__(self, files: list[str], invocation_dir: Path) -> None:
        self.files = {os.path.normpath(os.path.join(invocation_dir, f)) for f in files}

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        if collection_path.name in NEVER_SKIPPED or collection_path.is_dir():
            return None
        return True if os.path.normpath(str(collection_path)) not in self.files else None


def register(config: pytest.Config) -> None:
    """Register OnlyFiles when the option was given (called from pytest_configure)."""
    files = getattr(config.option, "fastcollect_only", None)
    if files:
        config.pluginmanager.register(OnlyFiles(list(files), config.invocation_params.dir), OnlyFiles.NAME)
