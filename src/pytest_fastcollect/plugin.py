"""pytest hook implementations of pytest-fastcollect (entry point `fastcollect`).

Hooks only: each delegates to one module. In this version the plugin walks and scans the files the run
will consider, on a background thread started before the initial conftests are imported, and reports it in
the header; it changes nothing in what pytest imports or collects.
"""

from __future__ import annotations

import json
from typing import Any, Generator

import pytest

from .errors import one_line
from .gcpolicy import CollectionGC
from .options import add_options, is_enabled
from . import xdist
from .state import DAEMON, STATE, State
from .flow import RECORDS, RecordsRun
from .selection import SkippedModule

__all__ = ["DAEMON", "RECORDS", "STATE"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _start(config: pytest.Config, args: list[str], options: Any) -> None:
    informational = bool(getattr(options, "help", False) or getattr(options, "version", False))
    worker = xdist.is_worker()
    state = State(enabled=is_enabled(config, options) and not informational)
    config.stash[STATE] = state
    if not state.enabled:
        return
    if worker:  # workerinput (the controller's cache) is known in pytest_configure: the scan starts there
        state.worker_pending = True
        return
    try:
        from . import cache

        location = cache.locate(config, options)
        if location is not None and getattr(options, "fastcollect_cache_clear", False):
            error = cache.clear(location)  # before anything is loaded from it
            if error:
                state.notes.append(f"cache not cleared: {error}")
        _scan(config, state, args, options, location)
    except Exception as exc:  # noqa: BLE001 - the core must never break a run
        state.failure = one_line(exc)


def _scan(config: pytest.Config, state: State, args: list[str], options: Any, location: Any) -> None:
    from .discovery import start_scan

    threads = max(0, int(getattr(options, "fastcollect_threads", 0) or 0))
    state.location = location
    state.job = start_scan(config, args, options, threads=threads, cache=location)
    # joined at the latest when pytest unconfigures (the thread is also non-daemon: see ScanJob)
    config.add_cleanup(state.finish)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # The earliest point where the ini and the command line are known, before any conftest is imported, and
    # (as the outermost wrapper) before pytest's capture plugin redirects fds 1 and 2: a warm daemon may take
    # the whole run from here with this process's real terminal (SystemExit with the run's exit code);
    # otherwise the scan overlaps the import of the initial conftests and of everything they import.
    namespace = early_config.known_args_namespace
    early_config.stash[DAEMON] = _daemon_decision(early_config, parser, namespace)
    _start(early_config, list(namespace.file_or_dir or []), namespace)
    return (yield)


def _daemon_decision(config: pytest.Config, parser: pytest.Parser, namespace: Any) -> Any:
    # SystemExit (a served run, a --daemon-* command) and UsageError (a bad daemon option) go through; any
    # other failure of the daemon part leaves a local run and a note for the -v header.
    try:
        from .daemon.session import before_run

        return before_run(config, parser, is_enabled(config, namespace))
    except pytest.UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        from .daemon.session import Decision

        return Decision(note=f"daemon unavailable: {one_line(exc)}")


def pytest_configure(config: pytest.Config) -> None:
    decision = config.stash.get(DAEMON, None)
    if decision is not None:
        decision.configured = True  # a run that never got here (usage error) starts no daemon
    if STATE not in config.stash:  # plugin registered after the initial conftests (e.g. `-p` in a conftest)
        _start(config, list(config.option.file_or_dir or []), config.option)
    state = config.stash[STATE]
    worker = False
    if state.worker_pending:  # an xdist worker: read the controller's cache, never write
        state.worker_pending = False
        worker = True
        try:
            _scan(config, state, list(config.option.file_or_dir or []), config.option, xdist.worker_cache(config))
        except Exception as exc:  # noqa: BLE001
            state.failure = one_line(exc)
    if state.enabled:
        run = RecordsRun(config, state, worker=worker)
        if worker:
            run.handoff = xdist.worker_selection(config)
            run.record_for_controller(xdist.worker_recording(config))
        config.stash[RECORDS] = run


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    # pytest-xdist, controller of a run the daemon serves: workers are forked from the warm template too
    # (tryfirst: xdist's own implementation keeps the list's specs for its status line)
    xdist.warm_workers(config, specs, getattr(config.stash.get(DAEMON, None), "served", None))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # pytest-xdist, controller: before a worker starts, the cache is written and handed over (xdist.py)
    xdist.configure_node(node.config, node)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    # pytest-xdist, controller: the recording worker's collection comes back in its workeroutput (xdist.py)
    xdist.node_down(node.config, node)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # pytest-xdist, worker: hand what this worker collected to the controller (before xdist sends workeroutput)
    run = session.config.stash.get(RECORDS, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if run is not None and isinstance(workeroutput, dict):
        payload = run.worker_output()
        if payload is not None:  # one str: execnet's serializer takes no int beyond 32 bits (mtime_ns)
            workeroutput[xdist.RECORDS_OUTPUT_KEY] = json.dumps(payload, separators=(",", ":"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or not state.enabled:
        return []
    state.finish()
    from .header import daemon_lines, header_lines

    lines = header_lines(state, [str(p) for p in config.getini("python_classes")])
    run = config.stash.get(RECORDS, None)
    if run is not None:
        from .header import selection_lines

        lines += selection_lines(run.prepare(), run.warning, config.option)
    return lines + daemon_lines(config.stash.get(DAEMON, None), config.option.verbose)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RECORDS, None)
    if run is not None:
        for line in run.summary_lines():
            terminalreporter.write_line(line, yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    decision = config.stash.get(DAEMON, None)
    run = config.stash.get(RECORDS, None)
    if run is not None:
        run.close()
        del config.stash[RECORDS]
    if STATE in config.stash:
        # released before pytest's end-of-session gc.collect() (its config cleanups run after this hook),
        # which would otherwise traverse every record, item name and scan result once more
        del config.stash[STATE]
    if decision is not None:
        from .daemon.session import after_run

        after_run(config, decision)


def pytest_collectstart(collector: pytest.Collector) -> None:
    # Recorded collection counts the warnings of each test file's collection from here (flow.py). In a run
    # served by the warm daemon: the import-time warnings of a still-warm test module (daemon/replay.py).
    run = collector.config.stash.get(RECORDS, None)
    if run is not None:
        run.collect_start(collector)
    decision = collector.config.stash.get(DAEMON, None)
    replayer = getattr(decision, "replayer", None)
    if replayer is not None and isinstance(collector, pytest.Module) and not isinstance(collector, SkippedModule):
        replayer.on_collect(str(collector.path))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    run = collector.config.stash.get(RECORDS, None)
    if run is not None:
        run.collect_end(collector, report)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    # The collector's young-generation threshold is raised for the collection phase only (gcpolicy.py).
    # -k/-m: decide which test files stay unimported before the first one is collected (selection.py)
    collection_gc = CollectionGC()
    collection_gc.start()
    try:
        run = session.config.stash.get(RECORDS, None)
        if run is not None and run.needs_decision():
            run.prepare()
        return (yield)
    finally:
        collection_gc.finish()


def pytest_pycollect_makemodule(module_path: Any, parent: pytest.Collector) -> pytest.Module | None:
    run = parent.config.stash.get(RECORDS, None)
    return None if run is None else run.make_module(module_path, parent)


def pytest_itemcollected(item: pytest.Item) -> None:
    run = item.config.stash.get(RECORDS, None)
    if run is not None:
        run.item_collected(item)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        run = items[0].config.stash.get(RECORDS, None)
        if run is not None:
            run.deselected(items)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    # Outermost: the stand-ins of unimported files leave the items before any other implementation sees
    # them and are reported deselected afterwards; then this run's collection is recorded.
    run = config.stash.get(RECORDS, None)
    if run is None:
        return (yield)
    run.take_placeholders(items)
    result = yield
    run.report_placeholders()
    run.record(items)
    run.release()
    return result


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.finish()
