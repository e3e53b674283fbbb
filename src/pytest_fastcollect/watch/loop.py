"""The watch loop: `pytest --daemon-watch [args]`.

Each run is a `pytest` process of its own, started with the caller's interpreter, options, environment, cwd
and terminal, so the warm daemon serves it exactly as it serves a command typed again (and a run is
exactly what that command would give: nothing of watch mode is in the run's process but, for a narrowed
run, `--fastcollect-only` and the files). The loop itself never imports the project.

- The first run is the whole selection (with `--ff`, previously failing tests first, when pytest's cache
  plugin is on and the command line sets no order of its own).
- Then watchfiles (inotify) reports saved changes, grouped until 50 ms pass without a new one (so an
  editor's write-and-rename, or two quick saves, make one run); changes.ignored() drops the events no test
  depends on, changes.affected() decides what the next run needs: the test files that reach the changed
  files, nothing, or the whole selection.
- A change during a run is queued: one more run follows with all that changed meanwhile. With
  `--daemon-watch-interrupt` the run gets SIGINT (pytest stops, as on Ctrl-C) and the next run starts.
- Keys when stdin is a terminal (terminal.py), read between runs only; a one-line status after each run.
- Ctrl-C leaves with the last run's exit code (a run that Ctrl-C stopped: its own, 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterable, Iterator

from .changes import Change, Plan, ProjectScan, WatchPath, affected, ignored
from .terminal import Keys, help_line

#: watchfiles' grouping: changes are yielded once `STEP_MS` pass without a new one (at most DEBOUNCE_MS).
STEP_MS = 50
DEBOUNCE_MS = 1600
#: How often the loop wakes without changes (to see a run end, a key) in milliseconds.
TICK_MS = 100
#: Options that set an order or a subset of their own: no `--ff` is added.
ORDER_OPTIONS = ("--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--sw", "--stepwise",
                 "--sw-skip", "--stepwise-skip")

_KINDS = {1: "added", 2: "modified", 3: "deleted"}


@dataclass
class Command:
    """What every run starts from: `prefix` (the interpreter and how pytest was started, e.g. `python -m
    pytest`), `args` (the caller's arguments less the watch flags), their `positional` arguments, the
    `rootdir`, the invocation dir `cwd`, and whether runs may be narrowed to files (`narrowable`: no node
    ID and no --pyargs among the arguments) or take `--lf`/`--ff` (`cache`: pytest's cache plugin on)."""

    prefix: list[str]
    args: list[str]
    positional: list[str]
    rootdir: str
    cwd: str
    cache: bool = True
    keyword: str | None = None

    def argv(self, files: list[str] | None = None, *, failed: bool = False, name_filter: str | None = None) -> list[str]:
        """The argv of one run: the whole selection, or only `files` of it (`--fastcollect-only`), or
        with `failed` only the tests that failed last (`--lf`); `name_filter` is and-ed with the caller's -k."""
        extra: list[str] = []
        given_order = any(a.split("=", 1)[0] in ORDER_OPTIONS for a in self.args)
        if failed and self.cache:
            extra.append("--lf")
        elif self.cache and not given_order:
            extra.append("--ff")
        for f in files or []:
            extra.append(f"--fastcollect-only={os.path.relpath(f, self.cwd)}")
        if name_filter:
            extra += ["-k", f"({self.keyword}) and ({name_filter})" if self.keyword else name_filter]
        # the positional arguments stay last, where the caller put them (pytest 8 reads positionals after
        # options only with the options first)
        options, tail = _split_tail(self.args, self.positional)
        return [*self.prefix, *options, *extra, *tail]


def _split_tail(args: list[str], positional: list[str]) -> tuple[list[str], list[str]]:
    """(args before the trailing run of positional arguments, that run)."""
    end = len(args)
    pos = set(positional)
    while end > 0 and args[end - 1] in pos:
        end -= 1
    return args[:end], args[end:]


def interpreter_prefix() -> list[str]:
    """How this pytest was started, without its arguments: `[python, *options, -m, pytest]` or `[python,
    *options, /path/to/pytest]` (sys.orig_argv less sys.argv[1:]); `[sys.executable, -m, pytest]` when
    that cannot be told."""
    orig = list(getattr(sys, "orig_argv", []) or [])
    tail = len(sys.argv) - 1
    if orig and 0 <= tail < len(orig) and orig[len(orig) - tail:] == sys.argv[1:]:
        prefix = orig[: len(orig) - tail]
        if prefix and ("-m" in prefix or len(prefix) >= 2):
            return [sys.executable, *prefix[1:]]
    return [sys.executable, "-m", "pytest"]


class Watch:
    """The loop (see the module docstring). `selection()` gives the test files of the selection in
    pytest's order (walked again after changes), `project_files()` the project's Python files (`project`
    caches what they import); `watcher` yields batches of (kind, path) every TICK_MS at least (an empty
    batch when nothing changed)."""

    def __init__(
        self,
        command: Command,
        selection: Callable[[], list[str]],
        project_files: Callable[[], list[str]],
        watcher: Callable[[], Iterator[Iterable[tuple[Any, str]]]],
        *,
        interrupt: bool = False,
        ignore_dirs: Iterable[str] = (),
        roots: Iterable[str] = (),
        project: ProjectScan | None = None,
        watch_paths: Iterable[WatchPath] = (),
        keys: Keys | None = None,
        out: IO[str] | None = None,
        spawn: Callable[[list[str], str], subprocess.Popen] | None = None,
    ) -> None:
        self.command = command
        self.selection = selection
        self.project_files = project_files
        self.watcher = watcher
        self.interrupt = interrupt
        self.ignore_dirs = list(ignore_dirs)
        self.roots = list(roots) or [command.rootdir]
        self.project = project or ProjectScan(command.rootdir, [])
        self.watch_paths = list(watch_paths)
        self.keys = keys or Keys()
        self.out = out or sys.stdout
        self.spawn = spawn or (lambda argv, cwd: subprocess.Popen(argv, cwd=cwd))
        self.exit_code = 0
        self.runs = 0
        self.name_filter: str | None = None
        self.file_filter: str | None = None
        self.last: tuple[Plan, bool] = (Plan(None, "first run"), False)
        self.pending: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._started = 0.0
        self._saved_at: float | None = None
        self._interrupted = False
        self._reader: threading.Thread | None = None

    # ---- output -------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.out.write(f"fastcollect watch: {text}\n")
        self.out.flush()

    # ---- runs ---------------------------------------------------------------------------------------
    def start(self, plan: Plan, failed: bool = False) -> None:
        files = plan.files
        if files is None and self.file_filter:
            files = [f for f in self.selection() if self.file_filter in os.path.relpath(f, self.command.rootdir)]
            if not files:
                self.say(f"no test file matches the file filter {self.file_filter!r}")
                return
        if files == []:
            self.say(f"{_changed(plan, self.command.rootdir)}nothing to run ({plan.reason}); waiting for changes")
            return
        self.last = (plan, failed)
        what = "the tests that failed last" if failed else "the whole selection" if files is None else (
            f"{len(files)} test file{'s' if len(files) != 1 else ''}")
        filters = "".join(f", {label} {value!r}" for label, value in (("name filter", self.name_filter),
                                                                       ("file filter", self.file_filter)) if value)
        self.say(f"{_changed(plan, self.command.rootdir)}running {what} ({plan.reason}{filters})")
        self.keys.release()
        self._saved_at = _newest_mtime(plan.changed)
        self._started, self._interrupted = time.monotonic(), False
        self._proc = self.spawn(self.command.argv(files, failed=failed, name_filter=self.name_filter), self.command.cwd)
        self.runs += 1

    def _finish(self, code: int) -> None:
        self._proc = None
        self.exit_code = code
        took = time.monotonic() - self._started
        since_save = f", {time.time() - self._saved_at:.2f} s after the save" if self._saved_at else ""
        keys = f" (keys: {help_line()})" if self.keys.active else ""
        queued = "; changes during the run: one more run" if self.pending else ""
        self.say(f"exit {code} in {took:.2f} s{since_save}{queued}; waiting for changes{keys}")

    def _prepare(self) -> None:
        """Read the project's files once while the first run goes on (a thread: the scanner releases the
        GIL); the first plan waits for it."""
        def read() -> None:
            try:
                self.project.refresh(self.project_files())
            except Exception:  # noqa: BLE001 - the first plan reads them again and reports
                pass

        self._reader = threading.Thread(target=read, name="fastcollect-watch-scan", daemon=True)
        self._reader.start()

    def _plan_pending(self) -> Plan:
        changes = [Change(kind, path) for path, kind in self.pending.items()]
        self.pending = {}
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        try:
            self.project.refresh(self.project_files())
            return affected(changes, self.selection(), self.project, self.watch_paths)
        except Exception as exc:  # noqa: BLE001 - cannot tell: the whole selection
            return Plan(None, f"cannot tell what the change reaches ({type(exc).__name__}: {exc})",
                        sorted({c.path for c in changes}))

    def _add(self, batch: Iterable[tuple[Any, str]]) -> bool:
        added = False
        for kind, path in batch:
            path = os.path.abspath(path)
            if ignored(path, self.ignore_dirs, self.roots):
                continue
            name = _KINDS.get(int(kind), "modified")
            before = self.pending.get(path)
            if before == "deleted" and name == "added" or before == "added" and name == "modified":
                name = "modified" if before == "deleted" else "added"
            self.pending[path] = name
            added = True
        return added

    # ---- keys ---------------------------------------------------------------------------------------
    def _key(self, key: str) -> bool:
        """Act on a key between runs; False to leave."""
        if key == "q":
            return False
        if key == "a":
            self.start(Plan(None, "key a: all"))
        elif key == "f":
            if self.command.cache:
                self.start(Plan(None, "key f: failed"), failed=True)
            else:
                self.say("f needs pytest's cache plugin (the command line disables it)")
        elif key == "\n":
            self.start(*self.last)
        elif key == "t":
            self.name_filter = self.keys.prompt("name filter (-k expression, empty for none): ", self.out) or None
            self.start(Plan(None, "key t: name filter"))
        elif key == "p":
            self.file_filter = self.keys.prompt("file filter (part of a path, empty for none): ", self.out) or None
            self.start(Plan(None, "key p: file filter"))
        return True

    # ---- the loop -----------------------------------------------------------------------------------
    def main(self) -> int:
        """Run until q or Ctrl-C; the last run's exit code."""
        self._prepare()
        try:
            for batch in self.watcher():
                if self._step(batch) is False:
                    break
        except KeyboardInterrupt:
            self._stop_run()
        finally:
            self.keys.release()
            if self._proc is not None:
                self._stop_run()
        return self.exit_code

    def _step(self, batch: Iterable[tuple[Any, str]]) -> bool:
        if self.runs == 0 and self._proc is None:
            self.start(Plan(None, "first run"))
            return True
        if self._add(batch) and self._proc is not None and self.interrupt and not self._interrupted:
            self.say("a change during the run: stopping it")
            self._interrupted = True
            self._proc.send_signal(signal.SIGINT)
        if self._proc is not None:
            code = self._proc.poll()
            if code is None:
                return True
            self._finish(_exit_code(code))
        if self.pending:
            self.start(self._plan_pending())
            return True
        self.keys.listen()
        key = self.keys.read(0)
        return True if key is None else self._key(key)

    def _stop_run(self) -> None:
        """Ctrl-C: the run (which the terminal interrupted too, or which gets SIGINT here when there is no
        terminal) ends, and its exit code is the loop's."""
        proc = self._proc
        if proc is None:
            return
        if not self.keys.active:
            proc.send_signal(signal.SIGINT)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.exit_code = _exit_code(proc.wait())
        finally:
            signal.signal(signal.SIGINT, previous)
        self._proc = None


def _changed(plan: Plan, rootdir: str) -> str:
    if not plan.changed:
        return ""
    shown = ", ".join(os.path.relpath(p, rootdir) for p in plan.changed[:3])
    return f"{shown}{' ...' if len(plan.changed) > 3 else ''} changed: "


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _newest_mtime(paths: list[str]) -> float | None:
    times = []
    for p in paths:
        try:
            times.append(os.stat(p).st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def watchfiles_watcher(paths: list[str], ignore_dirs: Iterable[str] = ()) -> Callable[[], Iterator[Iterable[tuple[Any, str]]]]:
    """watchfiles.watch over the folders `paths`: a batch per group of changes (less the ignored ones), an
    empty one every TICK_MS."""
    dirs = list(ignore_dirs)

    def run() -> Iterator[Iterable[tuple[Any, str]]]:
        import watchfiles

        yield from watchfiles.watch(*paths, watch_filter=lambda change, path: not ignored(path, dirs, paths),
                                    debounce=DEBOUNCE_MS, step=STEP_MS, rust_timeout=TICK_MS,
                                    yield_on_timeout=True, raise_interrupt=True)

    return run


__all__ = ["Command", "Watch", "interpreter_prefix", "watchfiles_watcher"]
