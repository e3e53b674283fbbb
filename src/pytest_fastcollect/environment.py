"""What a run's environment is made of, for the two places that must agree on it: the daemon's key and the
records' run key (daemon/paths.py, validity.py), and which module files belong to the project.

- The key material (key_material): interpreter, versions, loaded plugin distributions and the environment
  less VOLATILE_ENV, the variables that cannot change what a module does at import time.
- The interpreter's folders: the standard library (stdlib_folders), the site folders (site-packages and
  the user site: _site_package_folders), and excluded_folders, both with the interpreter's prefixes; the
  mtimes of the folders on sys.path outside rootdir (site_folders: pip install and uninstall change them).
- classify(file): "stdlib" (the standard library: part of the interpreter, whose path and version are in
  the key), "project" (under rootdir, outside the interpreter's folders, any conftest.py, or in a package
  that holds the run's test files: `--pyargs` runs collect tests from site-packages), else "installed".
  The records fingerprint every project file they were made with; the daemon evicts changed project
  modules and restarts for a changed installed one.
- Where pytest looks for an ini file (config_candidates): a new file there changes the configuration.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .keyfacts import VOLATILE_ENV, VOLATILE_ENV_PREFIXES, interpreter_facts, is_volatile

__all__ = ["VOLATILE_ENV", "VOLATILE_ENV_PREFIXES", "is_volatile", "key_material"]

def key_material(rootdir: str | os.PathLike[str], plugin_dists: Iterable[tuple[str, str]],
                 interpreter: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that must be equal for a run to use a daemon. `plugin_dists`: (name, version) of the
    distributions whose pytest plugins are loaded (pluginmanager.list_plugin_distinfo()); `interpreter`:
    keyfacts.interpreter_facts() of the process the run belongs to (default: this one; a run child of the
    early hand-off gets its client's)."""
    return {
        "rootdir": str(rootdir),
        **(interpreter if interpreter is not None else interpreter_facts()),
        "pytest": _pytest_version(),
        "fastcollect": __version__,
        "plugins": sorted(set(plugin_dists)),
        "uid": os.getuid(),
        "env": sorted((k, v) for k, v in os.environ.items() if not is_volatile(k)),
    }


def _pytest_version() -> str:
    import pytest

    return pytest.__version__


#: Names pytest looks for when it searches for an ini file (_pytest/config/findpaths.py locate_config).
CONFIG_NAMES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def excluded_folders() -> list[str]:
    """Folders whose modules are never project modules: the interpreter's prefixes and site folders."""
    out = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out.update(_site_package_folders())
    return sorted(out)


def stdlib_folders() -> list[str]:
    """The standard library's folders (where `os` and the `_struct` extension live, and sysconfig's
    "stdlib"): part of the interpreter, whose path and version are in the daemon's key, so their files are
    not fingerprinted. site-packages folders inside them are not part of it (Snapshot)."""
    import _struct
    import sysconfig

    folders = {os.path.dirname(os.__file__), sysconfig.get_paths().get("stdlib") or ""}
    folders.add(os.path.dirname(getattr(_struct, "__file__", "") or ""))
    return sorted({os.path.realpath(f) for f in folders if f})


def _site_package_folders() -> list[str]:
    """site.getsitepackages() and the user site folder, resolved."""
    out: set[str] = set()
    try:
        out.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # virtualenv's old site.py
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        out.add(os.path.realpath(user_site))
    return sorted(out)


def config_candidates(rootdir: str, invocation_dir: str, inipath: str | None) -> list[str]:
    """The ini file in use and every place pytest would look for one between the invocation folder and
    rootdir (a new file there changes the configuration)."""
    out: list[str] = []
    if inipath:
        out.append(os.path.realpath(inipath))
    root = Path(rootdir).resolve()
    here = Path(invocation_dir).resolve()
    folders = [root]
    if here == root or root in here.parents:
        folders = [here, *[p for p in here.parents if p == root or root in p.parents]]
    for folder in folders:
        for name in CONFIG_NAMES:
            path = str(folder / name)
            if path not in out:
                out.append(path)
    return out


def site_folders(rootdir: str) -> dict[str, int]:
    """mtime_ns of every existing sys.path folder outside rootdir (where installed packages live)."""
    root = os.path.realpath(rootdir)
    excluded = excluded_folders()
    out: dict[str, int] = {}
    for entry in sys.path:
        path = os.path.realpath(entry or ".")
        if _under(path, [root]) and not _under(path, excluded):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isdir(path):
            out[path] = st.st_mtime_ns
    return out




def top_packages(test_files: Iterable[str]) -> set[str]:
    """The folder of the top-most package holding each test file (its own folder if it is in none)."""
    tops: set[str] = set()
    for path in test_files:
        folder = os.path.dirname(os.path.abspath(path))
        top = folder
        while os.path.exists(os.path.join(folder, "__init__.py")):
            top = folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        tops.add(top)
    return tops


class Classifier:
    """classify(path) for one run (see the module docstring): the folders are computed once. `rootdir`, and
    `test_files` whose top-level packages count as the project wherever they are installed. Paths are
    compared as given (absolute); pass resolved paths to compare resolved ones."""

    def __init__(self, rootdir: str, test_files: Iterable[str] = (), resolve: bool = False) -> None:
        norm = os.path.realpath if resolve else os.path.abspath
        self.excluded = tuple(os.path.join(f, "") for f in excluded_folders())
        self.excluded += tuple(os.path.join(norm(p), "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix))
        self.stdlib = tuple(os.path.join(f, "") for f in stdlib_folders())
        self.site = tuple(os.path.join(f, "") for f in _site_package_folders())
        kept = {os.path.join(norm(rootdir), "")} if rootdir else set()
        kept.update(os.path.join(norm(top), "") for top in top_packages(test_files))
        self.project_roots = tuple(kept)

    def classify(self, path: str) -> str:
        if path.startswith(self.project_roots) or os.path.basename(path) == "conftest.py":
            return "project"
        if path.startswith(self.stdlib) and not path.startswith(self.site):
            return "stdlib"
        if not path.startswith(self.excluded):
            return "project"
        return "installed"
