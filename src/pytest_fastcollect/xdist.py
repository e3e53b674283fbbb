"""pytest-xdist: the controller prepares the discovery cache before any worker starts; workers only read it.

In the style of pytest-testmon 2.2: only the controller (no PYTEST_XDIST_WORKER) scans and writes. When xdist
sets up its first node (`pytest_configure_node`, before the node's worker process is told to start its
session), the controller waits for its own scan, so every cache row is written, and passes the cache's path
and generation (the database file's size and mtime_ns after the write) in `node.workerinput["fastcollect"]`.
A worker (recognised by PYTEST_XDIST_WORKER already in pytest_load_initial_conftests, where workerinput is
not yet set) starts no scan there; in pytest_configure it opens that file read-only (mode=ro, never written)
and scans from it. A worker that finds no hand-off, or a file of another generation, scans without the cache
(never writing one). Nothing here changes what a worker collects: every worker collects what plain pytest
collects, so all collect the same ordered node IDs.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .cache import CacheLocation
from .state import STATE

#: Key in node.workerinput.
WORKERINPUT_KEY = "fastcollect"
#: Key in workeroutput: the records the recording worker collected (flow.RecordsRun.worker_output).
RECORDS_OUTPUT_KEY = "fastcollect_records"
HANDOFF_VERSION = 1


def is_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def xdist_controller(config: pytest.Config) -> bool:
    """Whether this process is the controller of an xdist run that will start workers (xdist's DSession is
    registered: not with `-n 0`, `--collect-only` or `--pdb`, where xdist turns itself off)."""
    return not is_worker() and config.pluginmanager.getplugin("dsession") is not None


def _generation(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _handoff(config: pytest.Config) -> dict[str, Any] | None:
    """Worker side: the controller's hand-off in workerinput, None when absent or of another version."""
    workerinput = getattr(config, "workerinput", None)
    handoff = workerinput.get(WORKERINPUT_KEY) if isinstance(workerinput, dict) else None
    if not isinstance(handoff, dict) or handoff.get("version") != HANDOFF_VERSION:
        return None
    return handoff


def is_local_node(node: Any) -> bool:
    """Whether the node's worker runs on this machine, in this rootdir, with this interpreter: a `popen`
    spec without `chdir` whose python is this one or the daemon's worker launcher (which becomes it). Only
    such a worker may read the controller's cache and apply its -k/-m decision: a worker elsewhere
    (`socket=`, `ssh=`, `popen//chdir=`, another `python=`) has other paths, maybe another interpreter, and
    collects everything itself, as plain xdist would."""
    spec = getattr(getattr(node, "gateway", None), "spec", None)
    if spec is None or not getattr(spec, "popen", False) or getattr(spec, "chdir", None) or getattr(spec, "via", None):
        return False
    python = getattr(spec, "python", None)
    return not python or "pytest_fastcollect.daemon.worker" in str(python)


#: The xdist worker id asked to record the collection in this run (the first local node), per config.
RECORDING_NODE = pytest.StashKey[str]()


def configure_node(config: pytest.Config, run: Any, node: Any) -> None:
    """Controller side of `pytest_configure_node`: finish the scan (rows written), then hand the cache's path
    and generation, the -k/-m decision and (to the first local worker) the request to record, to a local
    worker (is_local_node); any other worker gets an empty hand-off. Never raises into xdist."""
    handoff: dict[str, Any] = {"version": HANDOFF_VERSION, "cache": None, "generation": None}
    if not is_local_node(node):
        node.workerinput[WORKERINPUT_KEY] = handoff
        return
    state = config.stash.get(STATE, None)
    try:
        if state is not None and state.enabled:
            state.finish()
            location = state.location
            if location is not None and state.report is not None:
                handoff["cache"] = location.path
                handoff["generation"] = _generation(location.path)
    except Exception:  # noqa: BLE001 - a worker without a hand-off scans without the cache
        pass
    try:
        if run is not None:
            handoff["skip"] = run.handoff_for_workers()
    except Exception:  # noqa: BLE001 - workers then import every file (all of them alike)
        handoff.pop("skip", None)
    try:
        # one local worker records what it collects and sends it back in workeroutput (RECORDS_OUTPUT_KEY):
        # every worker collects the same items, and only the controller writes
        workerid = str(node.workerinput.get("workerid"))
        if run is not None and config.stash.setdefault(RECORDING_NODE, workerid) == workerid:
            record = run.recording_for_workers()
            if record is not None:
                handoff["record"] = record
    except Exception:  # noqa: BLE001 - nothing is recorded in this run
        handoff.pop("record", None)
    node.workerinput[WORKERINPUT_KEY] = handoff


def node_down(run: Any, node: Any) -> None:
    """Controller side of `pytest_testnodedown`: write the records the recording worker sent. Never raises."""
    try:
        output = getattr(node, "workeroutput", None)
        if run is not None and isinstance(output, dict) and RECORDS_OUTPUT_KEY in output:
            run.worker_records(output[RECORDS_OUTPUT_KEY])
    except Exception:  # noqa: BLE001
        pass


class XdistController:
    """The controller's part, as a plugin object (registered by plugin.pytest_configure when xdist is loaded
    and this process is not a worker): `run` is the session's flow.RecordsRun."""

    NAME = "fastcollect-xdist-controller"

    def __init__(self, config: pytest.Config, run: Any) -> None:
        self.config = config
        self.run = run

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # before a worker starts, the cache is written and handed over
        configure_node(self.config, self.run, node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # the recording worker's collection comes back in its workeroutput
        node_down(self.run, node)


def worker_recording(config: pytest.Config) -> dict[str, str] | None:
    """Worker side: path -> ids_digest of the controller's valid records when this worker is asked to record,
    else None."""
    handoff = _handoff(config)
    if handoff is None:
        return None
    record = handoff.get("record")
    if not isinstance(record, dict):
        return None
    return {str(p): str(d) for p, d in record.items()}


def warm_workers(config: pytest.Config, specs: list[Any], served: Any) -> int:
    """Controller side of `pytest_xdist_setupnodes`: point the python of every popen spec that names no
    interpreter, gateway hop or remote at the daemon's worker launcher, when `served` (runtime.ServedRun of
    this run, None for a local run) says the run came from a daemon. Returns the number of specs changed."""
    if served is None or getattr(served, "worker", False) or not getattr(served, "socket", ""):
        return 0
    if getattr(served, "fresh", False):  # a measuring tool: workers import the project after it starts
        return 0
    from .daemon.worker import launcher_python

    python = launcher_python(served.socket, served.key)
    if "//" in python:  # execnet's spec separator: such a path cannot be written into a spec
        return 0
    changed = 0
    for i, spec in enumerate(specs):
        try:
            if not getattr(spec, "popen", False) or spec.python or spec.via or spec.ssh or spec.socket:
                continue
            # a new spec, not an attribute set on the old one: xdist rebuilds each spec from its string
            text = f"{spec}//python={python}"
            if spec.id and "id=" not in str(spec):  # allocated by xdist (gw0, gw1, ...): kept
                text += f"//id={spec.id}"
            specs[i] = type(spec)(text)
            changed += 1
        except Exception:  # noqa: BLE001 - an unusual spec keeps its cold worker
            continue
    return changed


def worker_selection(config: pytest.Config) -> dict[str, list[str]] | None:
    """Worker side: the controller's -k/-m decision (path -> recorded node IDs of the files it leaves
    unimported), or None when there is none (then the worker imports every file, as plain pytest)."""
    handoff = _handoff(config)
    if handoff is None:
        return None
    skip = handoff.get("skip")
    if not isinstance(skip, dict):
        return None
    return {str(p): [str(n) for n in ids] for p, ids in skip.items() if isinstance(ids, list)}


def worker_cache(config: pytest.Config) -> CacheLocation | None:
    """Worker side: the controller's cache, read-only, if the hand-off is there and the file is of the
    generation the controller wrote; else None (scan without a cache)."""
    handoff = _handoff(config)
    if handoff is None:
        return None
    path = handoff.get("cache")
    if not isinstance(path, str) or _generation(path) != handoff.get("generation"):
        return None
    return CacheLocation(path, True, "controller (xdist)")
