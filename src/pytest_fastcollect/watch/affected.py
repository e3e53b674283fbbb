"""`pytest --fastcollect-affected` and `--fastcollect-affected-since=REF`: one run of the tests the files
changed since the last such run (or against a git reference) can reach, by watch mode's rule
(changes.affected), plus the test files of the tests that failed last time (pytest's `cache/lastfailed`).

- Since the last run: at the end of every `--fastcollect-affected` run (not an xdist worker's) the project's
  files are fingerprinted (fingerprints.py: stat + XXH3, read at the run's start, so an edit made during the
  run counts as a change next time) into pytest's cache (`fastcollect/affected-v1`). The next run compares;
  with no earlier snapshot it runs the whole selection. Needs pytest's cache plugin.
- `=REF`: `git diff --name-only REF` and the untracked files (`git ls-files --others --exclude-standard`).
- The run is narrowed as watch mode narrows (only.OnlyFiles: the command line's paths stay); nothing
  affected means nothing collected (exit 5, "no tests ran", as pytest reports it). Under pytest-xdist the
  controller decides and its workers get the files in workerinput, so every worker collects the same.
- The header says what was decided and why (`fastcollect: affected: ...`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .. import fingerprints
from .changes import Change, Plan, ProjectScan, WatchPath, affected, ignored
from .only import OnlyFiles

CACHE_KEY = "fastcollect/affected-v1"
WORKERINPUT_KEY = "fastcollect_affected_files"


def project_files(folders: list[str], ignore_dirs: list[str]) -> list[str]:
    """Every file under `folders` that watch mode would not ignore (changes.ignored), sorted."""
    out = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not ignored(os.path.join(dirpath, d), ignore_dirs, folders)]
            out += [p for p in (os.path.join(dirpath, f) for f in filenames) if not ignored(p, ignore_dirs, folders)]
    return sorted(set(out))


def git_changes(rootdir: str, ref: str) -> list[Change]:
    """The files that differ from `ref` (committed or not) and the untracked ones. Raises UsageError when
    git cannot tell (not a repository, an unknown ref)."""
    def git(*args: str) -> list[str]:
        proc = subprocess.run(["git", "-C", rootdir, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise pytest.UsageError(f"--fastcollect-affected-since={ref}: git {' '.join(args)}: {proc.stderr.strip()}")
        return [p for p in proc.stdout.split("\0") if p]

    top = git("rev-parse", "--show-toplevel")[0].strip()
    paths = git("diff", "--name-only", "-z", ref, "--") + git("ls-files", "--others", "--exclude-standard", "-z")
    out = []
    for rel in sorted(set(paths)):
        path = os.path.join(top, rel)
        out.append(Change("modified" if os.path.exists(path) else "deleted", path))
    return out


def snapshot_changes(previous: dict[str, list[int]], files: list[str]) -> list[Change]:
    """What differs between the snapshot `previous` (path -> Fingerprint.to_list()) and the files now."""
    entries = {p: fingerprints.Fingerprint.from_list(v) for p, v in previous.items()}
    now = set(files)
    out = [Change("deleted" if not os.path.exists(p) else "modified", p) for p in sorted(fingerprints.changed(entries))]
    out += [Change("added", p) for p in sorted(now - set(entries))]
    return out


class AffectedRun:
    """Registered in pytest_configure for --fastcollect-affected[-since]: decides the files in its
    constructor, restricts collection to them (OnlyFiles), says so in the header, passes them to xdist
    workers, and snapshots the project at the end."""

    NAME = "fastcollect-affected"

    def __init__(self, config: pytest.Config, selection: list[str], folders: list[str], ignore_dirs: list[str],
                 since: str | None, watch_paths: list[WatchPath] | None = None) -> None:
        self.config = config
        self.watch_paths = list(watch_paths or [])
        self.read_ns = fingerprints.now_ns()
        self.folders, self.ignore_dirs = folders, ignore_dirs
        self.files_now: list[str] = []
        rootdir = str(config.rootpath)
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and WORKERINPUT_KEY in workerinput:  # an xdist worker: the controller's
            given = workerinput[WORKERINPUT_KEY]
            self.plan = Plan(None if given is None else list(given), "as the controller decided")
        else:
            self.files_now = project_files(folders, ignore_dirs)
            self.plan = self._decide(rootdir, selection, since)
        self.only = OnlyFiles(self.plan.files, config.invocation_params.dir) if self.plan.files is not None else None

    def _decide(self, rootdir: str, selection: list[str], since: str | None) -> Plan:
        if since is not None:
            changes = git_changes(rootdir, since)
            where = f"since {since}"
        else:
            cache = getattr(self.config, "cache", None)
            previous = cache.get(CACHE_KEY, None) if cache is not None else None
            if not isinstance(previous, dict) or not isinstance(previous.get("files"), dict):
                return Plan(None, "no earlier --fastcollect-affected run: the whole selection")
            changes = snapshot_changes(previous["files"], self.files_now)
            where = "since the last --fastcollect-affected run"
        changes = [c for c in changes if not ignored(c.path, self.ignore_dirs, self.folders)]
        project = ProjectScan(rootdir, [f for f in self.files_now if f.endswith(".py")])
        plan = affected(changes, selection, project, self.watch_paths) if changes else Plan([], "nothing changed")
        failed = self._last_failed(selection)
        if plan.files is not None and failed:
            files = [f for f in selection if f in set(plan.files) | failed]
            plan = Plan(files, f"{plan.reason}; and {len(failed)} file(s) with tests that failed last", plan.changed)
        return Plan(plan.files, f"{len(changes)} changed {where}: {plan.reason}", plan.changed)

    def _last_failed(self, selection: list[str]) -> set[str]:
        cache = getattr(self.config, "cache", None)
        lastfailed = cache.get("cache/lastfailed", {}) if cache is not None else {}
        files = {os.path.normpath(os.path.join(str(self.config.rootpath), n.split("::")[0])) for n in lastfailed or {}}
        return files & set(selection)

    # ---- hooks ----------------------------------------------------------------------------------------
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        return self.only.pytest_ignore_collect(collection_path, config) if self.only is not None else None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        what = "the whole selection" if self.plan.files is None else f"{len(self.plan.files)} test file(s)"
        return [f"fastcollect: affected: {what} ({self.plan.reason})"]

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.plan.files

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if getattr(self.config, "workerinput", None) is not None or getattr(self.config, "cache", None) is None:
            return
        taken = fingerprints.take(self.files_now, self.read_ns)
        self.config.cache.set(CACHE_KEY, {"files": {p: fp.to_list() for p, fp in taken.items() if fp.exists}})


def register(config: pytest.Config) -> None:
    """Register AffectedRun when asked (called from pytest_configure). UsageError for a combination that
    cannot work."""
    option = config.option
    since = getattr(option, "fastcollect_affected_since", None)
    if not getattr(option, "fastcollect_affected", False) and since is None:
        return
    if getattr(option, "fastcollect_only", None):
        raise pytest.UsageError("--fastcollect-affected and --fastcollect-only: use one")
    if since is None and getattr(config, "cache", None) is None:
        raise pytest.UsageError("--fastcollect-affected needs pytest's cache plugin (or use --fastcollect-affected-since=REF)")
    from ..discovery import walk
    from ..paths import path_rules
    from .command import pytest_cache_dir, watch_paths, watched_folders

    rules = path_rules(config, list(option.file_or_dir or []), option)
    selection = [f for f in walk(rules, 1).files if f.endswith(".py")]
    rootdir = str(config.rootpath)
    config.pluginmanager.register(
        AffectedRun(config, selection, watched_folders(rootdir, rules.roots), [pytest_cache_dir(config)], since,
                    watch_paths(config)),
        AffectedRun.NAME)
