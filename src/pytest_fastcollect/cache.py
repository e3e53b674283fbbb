"""Where the discovery cache of a rootdir lives, and its command-line switches.

One SQLite file per rootdir: `<pytest cache_dir>/d/fastcollect/discovery-v<schema>.sqlite` (created the way
pytest's own Cache.mkdir does, so `.pytest_cache` keeps its .gitignore and CACHEDIR.TAG). When the cache
provider is disabled (`-p no:cacheprovider`), `--cache-clear` is given, or that folder cannot be written, a
per-user folder is used: `$XDG_CACHE_HOME/pytest-fastcollect/<sha1 of rootdir>/` (default ~/.cache).
An existing database in a read-only checkout is opened read-only (SQLITE_OPEN_READONLY, falling back to
an `immutable=1` open when SQLite cannot create the WAL index file there).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import _core


@dataclass(frozen=True)
class CacheLocation:
    """`path` of the database; `read_only`: open with mode=ro and never write; `where`: for reports."""

    path: str
    read_only: bool
    where: str


def _db_name() -> str:
    return f"discovery-v{_core.CACHE_SCHEMA_VERSION}.sqlite"


def user_cache_dir(rootpath: Path) -> Path:
    """Per-user fallback folder for one rootdir (XDG cache dir convention)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(str(rootpath).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return base / "pytest-fastcollect" / digest


def _pytest_cache_location(config: pytest.Config, name: str) -> CacheLocation | None:
    """The database under pytest's own cache dir, `<cache_dir>/d/fastcollect/<name>`: read-only when it
    exists in a folder we may not write; else the folder is made through pytest's Cache (so the supporting
    files are there). None when that fails (read-only checkout, odd cache_dir, private API change)."""
    try:
        from _pytest.cacheprovider import Cache

        cachedir = Path(Cache.cache_dir_from_config(config, _ispytest=True))
        existing = cachedir / "d" / "fastcollect" / name
        if existing.exists() and not os.access(existing.parent, os.W_OK):
            return CacheLocation(str(existing), True, "pytest cache dir (read-only)")
        folder = Path(Cache(cachedir, config, _ispytest=True).mkdir("fastcollect"))
    except Exception:  # noqa: BLE001 - fall back to the user cache dir
        return None
    if not os.access(folder, os.W_OK):
        return None
    return CacheLocation(str(folder / name), False, "pytest cache dir")


def locate(config: pytest.Config, options: Any) -> CacheLocation | None:
    """The database for this run, or None when the cache is off (`--no-fastcollect-cache`, ini
    `fastcollect_cache = false`). `options`: config.option or config.known_args_namespace."""
    flag = getattr(options, "fastcollect_cache", None)
    enabled = bool(config.getini("fastcollect_cache")) if flag is None else bool(flag)
    if not enabled:
        return None
    name = _db_name()
    provider_on = not config.pluginmanager.is_blocked("cacheprovider")
    if provider_on and not getattr(options, "cacheclear", False):
        location = _pytest_cache_location(config, name)
        if location is not None:
            return location
    folder = user_cache_dir(config.rootpath)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return CacheLocation(str(folder / name), False, "user cache dir")


def clear(location: CacheLocation) -> str | None:
    """Delete the database files (--fastcollect-cache-clear): the discovery cache and the records of
    recorded collection beside it (records.py). Returns an error line, or None."""
    if location.read_only:
        return f"cannot clear a read-only cache: {location.path}"
    try:
        _core.DiscoveryCache.remove_files(location.path)
    except RuntimeError as exc:
        return str(exc)
    from .records import remove_store

    return remove_store(location.path)
