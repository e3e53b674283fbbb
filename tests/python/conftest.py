from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

from _corpus import CORPUS


@pytest.fixture
def corpus_copy(tmp_path: Path):
    """Copy a corpus case into tmp_path (so runs never write into the source tree) and return its path."""

    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(CORPUS / name, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        return dest

    return make
