"""When a recorded collection (records.py) still describes what pytest would collect now.

A record of test file F is valid only while all of these are unchanged (issue #3's list):
- the run key (run_key()): rootdir, interpreter, Python/pytest/plugin versions and loaded plugin
  distributions, the environment minus volatile variables (daemon/paths.py), the ini file's bytes and the
  places another ini file could appear, the set of conftest.py files under the run's roots, the mtimes of the
  folders installed packages live in (an install or uninstall changes them), and every command-line option
  that can change collection (all of pytest's option namespace except the output-only and run-only ones
  listed in IGNORED_OPTIONS);
- the manifest: every module file outside the interpreter's and site folders (the project's modules under
  rootdir, conftests included, and those of sibling projects or PYTHONPATH folders), and wherever they are
  installed every conftest, every module under rootdir and of the packages holding the test files
  (manifest_files()), that was imported when the record was written: a change to any of them invalidates every record written with
  that manifest (coarse, never too optimistic);
- F's own bytes, and those of every test file F imports, transitively, by the scanner's static imports
  (graph/): a changed test file invalidates itself and its reverse-import closure.
File identity and change: fingerprints.py (one rule for the records and the daemon): stat first, a
differing stat settled by XXH3-64 of the bytes; a file written after the recording run started reading (less
a 1 s margin) is racy and never trusted, so an edit made while a run collected is never hidden behind a
record of what that run read before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pytest

from . import _core, fingerprints
from .environment import Classifier, config_candidates, key_material, site_folders
from .fingerprints import Fingerprint

#: Bump when what a record holds or means changes (2: a fingerprint's last field is the run's start, when
#: the file was read, not the time of the recording).
RECORD_FORMAT = 2

#: Options of pytest and of common plugins that cannot change which items exist, their names or their marks.
IGNORED_OPTIONS = frozenset(
    {
        "keyword", "markexpr", "file_or_dir", "deselect",
        "capture", "code_highlight", "collectonly", "color", "continue_on_collection_errors",
        "disable_warnings", "durations", "durations_min", "fold_skipped", "force_short_summary", "fulltrace",
        "help", "junitprefix", "xmlpath", "maxfail", "exitfirst", "no_header", "no_summary", "pastebin",
        "quiet", "verbose", "reportchars", "showcapture", "showlocals", "tbstyle", "usepdb", "usepdb_cls",
        "trace", "xfail_tb", "setuponly", "setupplan", "setupshow", "show_fixtures_per_test", "showfixtures",
        "runxfail", "basetemp", "log_cli_level", "log_cli_format", "log_cli_date_format", "log_file",
        "log_file_level", "log_file_format", "log_file_date_format", "log_file_mode", "log_level",
        "log_format", "log_date_format", "log_auto_indent", "logger_disable", "max_warnings", "debug",
        "traceconfig", "version", "markers", "cacheshow", "cacheclear",
        # pytest-xdist: where items run, not which exist
        "numprocesses", "maxprocesses", "dist", "distload", "tx", "px", "rsyncdir", "rsyncignore",
        "looponfail", "maxworkerrestart", "maxschedchunk", "loadscopereorder", "testrunuid",
    }
)
#: Our own options and environment variables that do not change collection.
IGNORED_PREFIXES = ("fastcollect", "daemon_")
IGNORED_ENV = frozenset({"FASTCOLLECT_PARITY_RECORD", "FASTCOLLECT_KEY_DUMP", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT",
                         "PYTEST_XDIST_TESTRUNUID", "PYTEST_CURRENT_TEST",
                         "PYTHONDONTWRITEBYTECODE"})


def _stable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, dict):
        return sorted((str(k), _stable(v)) for k, v in value.items())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    text = repr(value)
    return text if " at 0x" not in text else f"<{type(value).__name__}>"


def collection_options(options: Any) -> list[tuple[str, Any]]:
    """The option namespace's entries that can change collection, sorted, as JSON-able values."""
    out = []
    for name, value in sorted(vars(options).items()):
        if name in IGNORED_OPTIONS or name.startswith(IGNORED_PREFIXES):
            continue
        out.append((name, _stable(value)))
    return out


def run_key(config: pytest.Config, conftests: Iterable[str]) -> str:
    """Hex digest of everything a record's validity depends on that is not a project file (module
    docstring). `conftests`: the conftest.py paths the walk found under the run's roots."""
    dists = {(dist.project_name, dist.version) for _, dist in config.pluginmanager.list_plugin_distinfo()}
    material = key_material(str(config.rootpath), dists)
    material["env"] = [kv for kv in material["env"] if kv[0] not in IGNORED_ENV]
    material["format"] = RECORD_FORMAT
    material["options"] = collection_options(config.option)
    candidates = config_candidates(str(config.rootpath), str(config.invocation_params.dir),
                                   str(config.inipath) if config.inipath else None)
    fps = _core.fingerprint_files(candidates, True, 1)
    material["config_files"] = [[p, fp.exists and fp.xxh3] for p, fp in zip(candidates, fps)]
    material["conftests"] = sorted(conftests)
    material["site"] = sorted(site_folders(str(config.rootpath)).items())
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    dump = os.environ.get("FASTCOLLECT_KEY_DUMP")
    if dump:  # troubleshooting: why a run does not find the records of another (diff two dumps)
        with open(f"{dump}.{os.getpid()}.json", "w", encoding="utf-8") as fh:
            json.dump(material, fh, sort_keys=True, indent=1, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def manifest_files(modules: Mapping[str, Any], rootdir: str = "", test_files: Iterable[str] = ()) -> set[str]:
    """Files of the modules in `modules` (sys.modules) that a record's manifest fingerprints: every `.py`
    file environment.Classifier calls "project" (the daemon's rule too): under rootdir, outside the
    interpreter's and site folders (a sibling project on `pythonpath` or installed editable, a folder on
    PYTHONPATH: in-place edits no site-folder mtime shows), every conftest.py, and every module of the
    top-level packages that hold the recorded `test_files`, wherever installed (`--pyargs networkx`: its
    conftest and package live in site-packages; an edit there used to leave the records valid and lose
    tests). Paths as in `__file__` (absolute), not resolved: cheap enough to run after every recorded
    collection. Installed packages are covered by the site folders' mtimes in the run key."""
    classifier = Classifier(rootdir, test_files)
    out: set[str] = set()
    for module in list(modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py") and os.path.isabs(file) and classifier.classify(file) == "project":
            out.add(file)
    return out


def fingerprint(paths: list[str], read_ns: int, previous: Mapping[str, list[int]] | None = None) -> dict[str, list[int]]:
    """path -> fingerprint list ([mtime_ns, ctime_ns, size, inode, xxh3, read_ns]: fingerprints.Fingerprint
    .to_list) of the files among `paths` that exist, read at `read_ns` (the run's start: a file written
    after that is racy, never trusted). A file whose stat equals its `previous` entry, which is not racy,
    keeps that entry's hash (not re-read)."""
    prev = {p: Fingerprint.from_list(v) for p, v in (previous or {}).items()}
    return {p: fp.to_list() for p, fp in fingerprints.take(paths, read_ns, prev).items() if fp.exists}


def changed(entries: Mapping[str, list[int]]) -> set[str]:
    """The paths among `entries` (path -> fingerprint list, as from fingerprint()) that changed or are gone,
    or whose fingerprint is racy (fingerprints.changed)."""
    return fingerprints.changed({p: Fingerprint.from_list(v) for p, v in entries.items()})


def import_roots(test_files: Iterable[str], rootdir: str) -> list[str]:
    """Import roots for the test-file graph: sys.path, rootdir, and the folder above each test file's
    top-most package (pytest's `prepend`/`append` basedir rule, _pytest/pathlib.py resolve_package_path)."""
    roots: list[str] = []
    seen: set[str] = set()

    def add(folder: str) -> None:
        if folder not in seen:
            seen.add(folder)
            roots.append(folder)

    for entry in sys.path:
        add(os.path.realpath(entry or "."))
    add(os.path.realpath(rootdir))
    for path in test_files:
        folder = os.path.dirname(path)
        while os.path.exists(os.path.join(folder, "__init__.py")):
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        add(folder)
    return roots


@dataclass
class Verdict:
    """Which records can be trusted now. `valid`: path -> FileRecord; `reasons`: counts of why the others
    cannot (for the header)."""

    valid: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def check(records: Mapping[str, Any], manifests: Mapping[str, dict[str, Any]], modules: Mapping[str, Any],
          rootdir: str) -> Verdict:
    """Validate `records` (path -> records.FileRecord, all of this run's key) against the files now.
    `modules`: path -> _core.ModuleInfo of this run's scan (a file outside the scan is never judged from a
    record: its imports are not in the graph)."""
    verdict = Verdict()

    def reject(reason: str, n: int = 1) -> None:
        verdict.reasons[reason] = verdict.reasons.get(reason, 0) + n

    ok_manifests = set()
    for mid, manifest in manifests.items():
        files = manifest.get("files", {})
        if not changed(files):
            ok_manifests.add(mid)
    candidates = {}
    for path, record in records.items():
        if record.manifest not in ok_manifests:
            reject("project module changed")
        elif path not in modules:
            reject("not in this run's scan")
        else:
            candidates[path] = record
    if not candidates:
        return verdict
    own = changed({p: r.fp for p, r in candidates.items()})
    if own:
        paths = sorted(modules)
        graph = _core.ImportGraph(paths, [modules[p] for p in paths], import_roots(paths, rootdir))
        stale = set(graph.reverse_closure(sorted(own)))
    else:
        stale = set()
    for path, record in candidates.items():
        if path in own:
            reject("file changed")
        elif path in stale:
            reject("imports a changed test file")
        else:
            verdict.valid[path] = record
    return verdict
