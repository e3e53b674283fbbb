"""One run's use of recorded collection: load and validate records, decide what -k/-m lets pytest leave
unimported, and record what this run collected. The plugin's hooks call into a RecordsRun kept in
`config.stash[RECORDS]`; every step catches its own failures (a broken record never breaks a run: the file
is imported, as without the plugin).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

import pytest

from .errors import one_line
from .records import CROSS_IMPORT, FileRecord, RecordStore, nodeids_digest, store_path
from .recording import Recorder, warnings_seen
from .measuring import import_measuring
from .selection import RecordedItem, Selection, SkippedModule, decide, expressions, foreign_itemcollected, query_key
from .state import State
from .xdist import xdist_controller

RECORDS = pytest.StashKey["RecordsRun"]()
#: shape of the records an xdist worker sends back (RecordsRun.worker_output)
WORKER_RECORDS_VERSION = 1


def _why_off(config: pytest.Config) -> str:
    """Why this run can neither use nor write records ('' when it can)."""
    option = config.option
    if getattr(option, "doctestmodules", False):
        return "--doctest-modules"
    if getattr(option, "lf", False) or getattr(option, "stepwise", False) or getattr(option, "stepwise_skip", False):
        return "--lf/--sw filter the collection"
    if any("::" in str(arg) for arg in option.file_or_dir or []):
        # a file named by node ID is collected only in part (and with --pyargs its path is not even known
        # here): its record would be partial, and leaving it unimported would change the deselected count
        return "node IDs on the command line"
    return ""


class RecordsRun:
    """Records and selection for one session (see the module docstring). `worker`: an xdist worker, which
    never writes and applies only the controller's decision (`handoff`)."""

    def __init__(self, config: pytest.Config, state: State, worker: bool = False) -> None:
        self.config = config
        self.state = state
        self.worker = worker
        self.prepared = False
        self.selection = Selection()
        self.valid: dict[str, FileRecord] = {}
        self.store: RecordStore | None = None
        self.key = ""
        self.manifests: dict[str, dict[str, Any]] = {}
        # collects from the first collected file on; prepare() drops it when this run cannot record
        self.recorder: Recorder | None = None if worker else Recorder()
        self.placeholders: list[pytest.Item] = []
        self.warning = ""
        self.handoff: dict[str, list[str]] | None = None
        self._before: dict[int, int | None] = {}
        #: imported files whose collection differed from their record (see record())
        self.mismatches: list[str] = []
        #: files with a record of this run key (valid or not) when the run started
        self.recorded_paths: set[str] = set()
        #: this run's -k/-m decisions not stored yet (written with the records, after collection)
        self.query = ""
        self.learnt: list[tuple[str, str, bool]] = []
        #: xdist worker asked to record (gw0): path -> ids_digest of the controller's valid records
        self.worker_record: dict[str, str] | None = None
        self._items: list[pytest.Item] | None = None

    # -- before collection -------------------------------------------------------------------------------
    def needs_decision(self) -> bool:
        """Whether files may be left unimported in this run (-k or -m given): then prepare() must run before
        collection; otherwise it can wait for the header or the end of collection (the scan keeps
        overlapping pytest's own work meanwhile)."""
        option = self.config.option
        return bool(str(getattr(option, "keyword", "") or "").strip() or getattr(option, "markexpr", ""))

    def prepare(self) -> Selection:
        """Load, validate and decide, once. Never raises."""
        if self.prepared:
            return self.selection
        self.prepared = True
        t0 = time.perf_counter()
        try:
            self._prepare()
        except Exception as exc:  # noqa: BLE001
            self.selection = Selection(why_not=f"records unusable: {one_line(exc)}")
            self.recorder = None
        self.selection.seconds = time.perf_counter() - t0
        return self.selection

    def _prepare(self) -> None:
        config, state = self.config, self.state
        self.state.finish()
        why = "" if state.enabled and state.report is not None else "plugin scan unavailable"
        why = why or _why_off(config)
        if not why and state.location is None:
            why = "no discovery cache (--no-fastcollect-cache)"
        if why:
            self.selection = Selection(why_not=why)
            self.recorder = None
            return
        keyword, mark, error = expressions(config.option)
        strict = bool(getattr(config.option, "fastcollect_strict", None) or config.getini("fastcollect_strict"))
        if self.worker:  # a worker has a recorder only when asked to record (record_for_controller)
            self._prepare_worker(keyword, mark, error, strict)
            return
        report = state.report
        self.store = RecordStore(store_path(state.location.path), read_only=state.location.read_only)
        if self.store.warning:
            self.warning = self.store.warning
        from .validity import check, run_key

        self.key = run_key(config, report.conftests)
        if xdist_controller(config):
            # what xdist workers collect is recorded apart from what a run without xdist collects: a module
            # may collect differently in a worker (PYTEST_XDIST_WORKER, worker_id), and the controller's
            # decision must hold for exactly what the workers will collect
            self.key += ":xdist"
        records, self.manifests = self.store.load(self.key)
        if self.store.warning:  # e.g. a corrupt file found while reading: set aside, recorded again
            self.warning = self.store.warning
        self.recorded_paths = set(records)
        modules = {m.path: m for m in report.modules}
        verdict = check(records, self.manifests, modules, str(config.rootpath))
        self.valid = verdict.valid
        selection = Selection(considered=len(verdict.valid), stale=verdict.reasons)
        selection.unrecorded = sum(1 for p in modules if p not in records)
        if keyword is None and mark is None:
            selection.why_not = error or "no -k/-m"
        elif strict:
            selection.why_not = "--fastcollect-strict"
        elif (measured := import_measuring(config)) is not None:
            # a coverage report lists what was imported: a file left unimported would leave out what only it
            # imports (and its module-level lines)
            selection.why_not = f"{measured}: what is imported is measured"
        elif (hook := foreign_itemcollected(config.hook.pytest_itemcollected)) is not None:
            selection.why_not = f"{hook} implements pytest_itemcollected (it would see stand-in items)"
        elif CROSS_IMPORT in self.store.flags(self.key):
            selection.why_not = "importing some test modules changes what others collect in this project"
        else:
            self.query = query_key(config.option)
            broken: list[str] = []
            selection.skip = decide(
                verdict.valid, keyword, mark, known=self.store.decisions(self.query), learnt=self.learnt,
                broken=broken,
            )
            for path in broken:  # imported, and recorded again by this run
                del self.valid[path]
                selection.considered -= 1
        self.selection = selection

    def _prepare_worker(self, keyword: Any, mark: Any, error: str, strict: bool) -> None:
        # An xdist worker applies the controller's decision only (all workers then collect the same items);
        # without one it imports everything, like plain pytest.
        self.selection = Selection(why_not="xdist worker without the controller's decision")
        handoff = self.handoff
        if handoff is None or strict or (keyword is None and mark is None) or error:
            return
        from .records import ItemRecord

        skip = {p: FileRecord(p, [], [ItemRecord(n, [], []) for n in ids]) for p, ids in handoff.items()}
        self.selection = Selection(skip=skip, considered=len(skip))

    def handoff_for_workers(self) -> dict[str, list[str]]:
        """Controller side of xdist: path -> recorded node IDs of every file left unimported."""
        selection = self.prepare()
        return {p: [i.nodeid for i in r.items] for p, r in selection.skip.items()}

    # -- during collection -------------------------------------------------------------------------------
    def make_module(self, module_path: Any, parent: pytest.Collector) -> pytest.Module | None:
        record = self.selection.skip.get(str(module_path))
        if record is None:
            return None
        module = SkippedModule.from_parent(parent, path=module_path)
        module.fastcollect_record = record
        return module

    def collect_start(self, collector: pytest.Collector) -> None:
        """pytest_collectstart of a collector inside a test file (before the daemon replays import-time
        warnings there): remember how many warnings pytest holds."""
        if self.recorder is None or isinstance(collector, SkippedModule):
            return
        if isinstance(collector, pytest.Module) or collector.getparent(pytest.Module) is not None:
            self._before[id(collector)] = warnings_seen()

    def collect_end(self, collector: pytest.Collector, report: pytest.CollectReport) -> None:
        """After pytest_make_collect_report of that collector: its outcome and the warnings it raised."""
        recorder = self.recorder
        if recorder is None or isinstance(collector, SkippedModule):
            return
        module = collector if isinstance(collector, pytest.Module) else collector.getparent(pytest.Module)
        if module is None:
            return
        before = self._before.pop(id(collector), None)
        after = warnings_seen()
        delta = None if before is None or after is None else after - before
        # a test module's `pytest_plugins` registers plugins when pytest imports it (consider_module): leaving
        # it unimported would change the session's hooks, so such a file is never recorded
        failed = not report.passed or (collector is module and _declares_plugins(module))
        recorder.module_collected(str(module.path), failed, delta)

    def item_collected(self, item: pytest.Item) -> None:
        if self.recorder is not None and not isinstance(item, RecordedItem):
            self.recorder.item_collected(item)

    def deselected(self, items: list[pytest.Item]) -> None:
        if self.recorder is not None:
            self.recorder.deselected([i for i in items if not isinstance(i, RecordedItem)])

    def take_placeholders(self, items: list[pytest.Item]) -> None:
        """Before the modifyitems implementations: the RecordedItems leave `items`."""
        if any(isinstance(i, RecordedItem) for i in items):
            self.placeholders = [i for i in items if isinstance(i, RecordedItem)]
            items[:] = [i for i in items if not isinstance(i, RecordedItem)]

    def report_placeholders(self) -> None:
        if self.placeholders:
            placeholders, self.placeholders = self.placeholders, []
            self.config.hook.pytest_deselected(items=placeholders)

    # -- after collection --------------------------------------------------------------------------------
    def _plan(self, items: list[pytest.Item], valid_ids: dict[str, str], skip: set[str]
              ) -> tuple[list[str], list[FileRecord], list[str]]:
        """(mismatches, records to write, paths to forget) of this process's collection. `valid_ids`: path ->
        ids_digest of every file with a valid record; `skip`: the files left unimported.

        A file imported in this run whose node IDs differ from its valid record: either the validity check
        missed a change, or importing a file this run left unimported changes what this one collects
        (import-time side effects across test modules). It is recorded again (see _store)."""
        recorder = self.recorder
        assert recorder is not None
        imported = {p for p in valid_ids if p not in skip}
        mismatches: list[str] = []
        if imported:
            collected = recorder.nodeids(imported)
            mismatches = sorted(p for p in imported if nodeids_digest(collected[p]) != valid_ids[p])
        trusted = set(valid_ids) - set(mismatches)
        rows, forget = recorder.finish(items, skip=trusted | skip)
        return mismatches, rows, forget

    def _store(self, mismatches: list[str], rows: list[FileRecord], forget: list[str],
               manifest: tuple[str, dict[str, Any]] | None, fps: dict[str, list[int]]) -> None:
        """Write what a collection found (this process's, or an xdist worker's): if files were left unimported
        and an imported file collected other node IDs than recorded, every record of this key goes and the
        key is flagged CROSS_IMPORT (the next runs import everything), and the summary says so."""
        store = self.store
        assert store is not None
        self.mismatches = mismatches
        forget_all: list[str] = []
        if mismatches and self.selection.skip:
            forget_all = sorted(set(self.valid) | set(self.selection.skip))
            store.set_flag(self.key, CROSS_IMPORT)
        rows = [r for r in rows if r.path not in forget_all and r.path in fps]
        # only records that exist need deleting (a file that is never recordable costs nothing per run)
        forget = sorted((set(forget) & self.recorded_paths) | set(forget_all))
        if not rows and not forget:
            return
        manifest_id, manifest_doc = manifest if manifest is not None else ("", {"files": {}})
        store.save(self.key, manifest_id, manifest_doc, [(r, fps[r.path]) for r in rows], forget)
        if store.warning:
            self.warning = store.warning

    def record(self, items: list[pytest.Item]) -> None:
        """Write the records of the files this run imported and has no valid record for (an xdist worker asked
        to record keeps its items for worker_output() instead). Never raises."""
        self.prepare()
        recorder, store = self.recorder, self.store
        if self.worker:
            if recorder is not None and self.worker_record is not None:
                self._items = items
            return
        if recorder is None or store is None or store.read_only:
            return
        from .validity import fingerprint

        try:
            valid_ids = {p: r.ids_digest for p, r in self.valid.items()}
            mismatches, rows, forget = self._plan(items, valid_ids, set(self.selection.skip))
            manifest = self._manifest(set(recorder.files)) if rows else None
            self._store(mismatches, rows, forget, manifest, fingerprint([r.path for r in rows], self.state.started_ns))
        except Exception as exc:  # noqa: BLE001
            self.warning = f"records not written: {one_line(exc)}"

    # -- xdist: gw0 records, the controller writes ----------------------------------------------------------
    def recording_for_workers(self) -> dict[str, str] | None:
        """Controller side: path -> ids_digest of every valid record, for the worker asked to record (gw0);
        None when this run writes no records."""
        self.prepare()
        # prepare() drops the recorder of a run that cannot record (see _prepare and _why_off)
        if self.worker or self.recorder is None or self.store is None or self.store.read_only:
            return None
        return {p: r.ids_digest for p, r in self.valid.items()}

    def record_for_controller(self, valid_ids: dict[str, str] | None) -> None:
        """Worker side, before collection: record this worker's collection for the controller (`valid_ids`:
        path -> ids_digest of the controller's valid records; None: not asked to record)."""
        self.worker_record = valid_ids
        self.recorder = Recorder() if valid_ids is not None else None

    def worker_output(self) -> dict[str, Any] | None:
        """Worker side, at the end of its session: what its collection found, for the controller to write
        (sent back in `workeroutput`); None when it was not asked to record or could not. Never raises."""
        if not self.worker or self.recorder is None or self.worker_record is None or self._items is None:
            return None
        from .validity import fingerprint

        try:
            mismatches, rows, forget = self._plan(self._items, self.worker_record, set(self.selection.skip))
            fps = fingerprint([r.path for r in rows], self.state.started_ns)
            manifest = self._manifest(set(self.recorder.files)) if rows else None
            return {
                "version": WORKER_RECORDS_VERSION,
                "mismatches": mismatches,
                "rows": [[r.path, r.encode(), fps[r.path], nodeids_digest(i.nodeid for i in r.items)]
                         for r in rows if r.path in fps],
                "forget": forget,
                "manifest": list(manifest) if manifest is not None else None,
            }
        except Exception:  # noqa: BLE001 - nothing recorded: the next run imports and records
            return None

    def worker_records(self, payload: Any) -> None:
        """Controller side: write what the recording worker sent (worker_output()); a payload of another shape
        is ignored. Never raises."""
        if self.worker or self.store is None or self.store.read_only or not isinstance(payload, str):
            return
        try:
            payload = json.loads(payload)
            if not isinstance(payload, dict) or payload.get("version") != WORKER_RECORDS_VERSION:
                return
            rows: list[FileRecord] = []
            fps: dict[str, list[int]] = {}
            for path, text, fp, ids_digest in payload["rows"]:
                record = FileRecord(str(path), text=str(text))
                record.ids_digest = str(ids_digest)
                rows.append(record)
                fps[record.path] = [int(x) for x in fp]
            manifest = payload.get("manifest")
            manifest_pair = (str(manifest[0]), dict(manifest[1])) if manifest else None
            mismatches = sorted(str(p) for p in payload["mismatches"] if str(p) in self.valid)
            forget = [str(p) for p in payload["forget"]]
            self._store(mismatches, rows, forget, manifest_pair, fps)
        except Exception as exc:  # noqa: BLE001
            self.warning = f"records not written: {one_line(exc)}"

    def _manifest(self, test_files: set[str]) -> tuple[str, dict[str, Any]]:
        from .validity import fingerprint, manifest_files

        paths = sorted(p for p in manifest_files(sys.modules, str(self.config.rootpath), test_files)
                       if p not in test_files)
        previous: dict[str, list[int]] = {}
        for manifest in self.manifests.values():
            previous.update(manifest.get("files", {}))
        files = fingerprint(paths, self.state.started_ns, previous)
        blob = json.dumps(sorted((p, fp[:5]) for p, fp in files.items()), separators=(",", ":"))
        manifest_id = hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        return manifest_id, {"files": files}

    def summary_lines(self) -> list[str]:
        """Lines for the terminal summary: only when something the user should know about happened."""
        if self.mismatches and self.selection.skip:
            some = ", ".join(os.path.basename(p) for p in self.mismatches[:3])
            return [
                f"fastcollect: {len(self.mismatches)} imported test files ({some}) collected other tests than "
                f"recorded while {len(self.selection.skip)} files were left unimported: importing test modules "
                "changes what other test modules collect here. From now on every file is imported for these "
                "options (delete records-v2.sqlite beside the discovery cache to try again)."
            ]
        return []

    def release(self) -> None:
        """After collection: store this run's new -k/-m decisions and close the database connection, so the
        tests run with no fd of the plugin's open (a later write, e.g. an xdist controller's, reopens it).
        Never raises."""
        if self.store is not None and self.learnt:
            self.store.save_decisions(self.query, self.learnt)
            self.learnt = []
            if self.store.warning:
                self.warning = self.store.warning
        if self.store is not None:
            self.store.release()

    def close(self) -> None:
        """End of the session: store what is left (an xdist controller collects nothing: its decisions are
        stored here), then close the database. Never raises."""
        self.release()
        self.store = None


def _declares_plugins(module: pytest.Module) -> bool:
    obj = getattr(module, "_obj", None)  # the imported module (Module.obj without importing)
    return obj is None or hasattr(obj, "pytest_plugins")

