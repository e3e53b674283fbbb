"""pytest hook implementations of pytest-fastcollect (entry point `fastcollect`).

Hooks only: each delegates to one module. Before the initial conftests are imported, a warm daemon may take
the whole run (daemon/session.py); otherwise the plugin walks and scans the files the run will consider on
a background thread, and in pytest_configure registers, when active, the plugin objects that hold this
session's state: the records plugin (records_plugin.py: with -k/-m, test files whose recorded collection
holds no selected test are left unimported; every run records what it collected) and, under pytest-xdist,
the controller's hand-off to its workers (xdist.XdistController), and with --fastcollect-only the file
restriction of watch mode's narrowed runs (watch/only.py). `--daemon-watch` makes this process the watch loop
(watch/) instead of a run.
"""

from __future__ import annotations

import sys
from typing import Any, Generator

import pytest

from .errors import one_line
from .gcpolicy import CollectionGC
from .options import add_options, is_enabled
from . import xdist
from .state import DAEMON, STATE, State
from .flow import RECORDS, RecordsRun
from .records_plugin import RecordsPlugin
from .selection import SkippedModule
from . import watch

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
    informational = getattr(namespace, "help", False) or getattr(namespace, "version", False)
    if getattr(namespace, "daemon_watch", False) and not informational:  # watch mode: this process runs the loop (watch/)
        from .watch.command import run as watch_loop

        raise SystemExit(watch_loop(early_config, parser))
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


def _clock(name: str) -> None:
    """Mark `name` on a served run child's clock (daemon/runclock.py; imported only in a run child)."""
    clock = sys.modules.get("pytest_fastcollect.daemon.runclock")
    if clock is not None:
        clock.mark(name)


def pytest_configure(config: pytest.Config) -> None:
    _clock("configured")
    decision = config.stash.get(DAEMON, None)
    if decision is not None:
        decision.configured = True  # a run that never got here (usage error) starts no daemon
    if STATE not in config.stash:  # plugin registered after the initial conftests (e.g. `-p` in a conftest)
        _start(config, list(config.option.file_or_dir or []), config.option)
    state = config.stash[STATE]
    watch.register(config)
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
        elif config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(xdist.XdistController(config, run), xdist.XdistController.NAME)
        config.stash[RECORDS] = run  # (for readers outside the hooks: the parity recorder)
        config.pluginmanager.register(RecordsPlugin(run), RecordsPlugin.NAME)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    # pytest-xdist, controller of a run the daemon serves: workers are forked from the warm template too
    # (tryfirst: xdist's own implementation keeps the list's specs for its status line)
    xdist.warm_workers(config, specs, getattr(config.stash.get(DAEMON, None), "served", None))


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


def pytest_unconfigure(config: pytest.Config) -> None:
    decision = config.stash.get(DAEMON, None)
    # (the records plugin closed its database in its own pytest_unconfigure, which runs before this one)
    for name in (RecordsPlugin.NAME, xdist.XdistController.NAME):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
    if RECORDS in config.stash:
        del config.stash[RECORDS]
    if STATE in config.stash:
        # released before pytest's end-of-session gc.collect() (its config cleanups run after this hook),
        # which would otherwise traverse every record, item name and scan result once more
        del config.stash[STATE]
    if decision is not None:
        from .daemon.session import after_run

        after_run(config, decision)


def pytest_collectstart(collector: pytest.Collector) -> None:
    # In a run served by the warm daemon: the import-time warnings of a still-warm test module
    # (daemon/replay.py), after the records plugin (registered later: called first) counted the warnings
    decision = collector.config.stash.get(DAEMON, None)
    replayer = getattr(decision, "replayer", None)
    if replayer is not None and isinstance(collector, pytest.Module) and not isinstance(collector, SkippedModule):
        replayer.on_collect(str(collector.path))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    # The collector's young-generation threshold is raised for the collection phase only (gcpolicy.py).
    collection_gc = CollectionGC()
    collection_gc.start()
    try:
        return (yield)
    finally:
        collection_gc.finish()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    _clock("tests")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _clock("collected")
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.finish()
