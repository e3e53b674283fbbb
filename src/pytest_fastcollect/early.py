"""The early hand-off: a `pytest` run given to its warm daemon before pytest is imported (docs/how-it-works.md,
"Early hand-off").

The wheel installs `pytest_fastcollect_early.pth` into site-packages, and site.py runs its one line at every
interpreter start-up. That line only looks at sys.orig_argv: unless an argument after the interpreter's path
contains "pytest" or "py.test" it returns without importing anything. Otherwise it calls install() here, which checks that this
is a pytest invocation (invocation(): the `pytest`/`py.test` scripts, `python -m pytest`) that may be served
(allowed()) and puts a finder at the head of sys.meta_path. When the program then imports pytest (the
console script's first statement, runpy's for `-m`), site, sitecustomize and sys.path are complete: the
finder removes itself and hand_off() looks up the index (below) for the daemon that served this very command
before, sends the run as the in-process client does (daemon/handoff.py), and leaves with the run's exit
code. Anything else (no entry, no daemon, the daemon or its run child says "refused") returns, and the
import of pytest goes on as if nothing happened: the in-process client (daemon/session.py) then decides as
always.

The daemon side decides everything the in-process client would (daemon/session.py, early_refusal), in the
forked run child, before the run has written a byte to the client's terminal (daemon/child.py, EarlyHold).

The index: `<socket folder>/early/<index_name>`, one small JSON file {"key": daemon key, "servable": bool}
per (sys.orig_argv, cwd, environment less the volatile variables), written by the in-process client just
before it hands a run to a daemon (remember()). The entry only says which daemon to ask: the run child
checks the key again from pytest's own configuration.

Off: PYTEST_FASTCOLLECT_EARLY=0 in the environment, or ini `fastcollect_early_handoff = false` (the
in-process client then removes the entry). Never for `python -I`, `-S` (no site), -c, stdin, CI (the daemon
is off there by default), an xdist worker, or --help/--version/--daemon-* commands.

Standard-library imports only, each paid on every pytest start that gets this far.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # typing is not imported at run time: the early hand-off pays for each import
if TYPE_CHECKING:
    from typing import Any

#: The environment variable that turns the early hand-off off ("0", "false", "no", "off").
SWITCH = "PYTEST_FASTCOLLECT_EARLY"
#: When install() ran (epoch seconds: the process's start, give or take the interpreter's ~10 ms).
STARTED: float | None = None
#: Interpreter options that take the next argument (CPython's Modules/main.c usage).
_OPTION_ARGS = {"-W", "-X", "--check-hash-based-pycs"}
#: pytest arguments whose runs are never handed off early (they print without running, or are commands).
_NEVER = ("-h", "--help", "-V", "--version", "--daemon-", "--fastcollect-daemon-fresh")


def invocation(orig_argv: list[str]) -> dict[str, Any] | None:
    """How pytest is started by `orig_argv` (sys.orig_argv): {"spec": "pytest.__main__", "file": None} for
    `python [options] -m pytest ...`, {"spec": None, "file": path} for the `pytest`/`py.test` script, None
    for anything else (-c, stdin, another module or script). The shape of procstate.main_module()."""
    rest = orig_argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "-m":
            return {"spec": "pytest.__main__", "file": None} if rest[i + 1 : i + 2] == ["pytest"] else None
        if arg.startswith("-m"):  # -mpytest
            return {"spec": "pytest.__main__", "file": None} if arg == "-mpytest" else None
        if arg == "-c" or arg.startswith("-c") and not arg.startswith("--"):
            return None
        if arg == "-" or not arg.startswith("-"):
            name = os.path.basename(arg)
            return {"spec": None, "file": arg} if name in ("pytest", "py.test") else None
        i += 2 if arg in _OPTION_ARGS else 1
    return None


def allowed(environ: Any = os.environ) -> bool:
    """May this process hand its run off early at all (module docstring: the cases it never does)?"""
    if environ.get(SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if environ.get("CI") or "PYTEST_XDIST_WORKER" in environ:
        return False
    return sys.platform.startswith("linux") and not sys.flags.isolated and not sys.flags.no_site


def install() -> None:
    """Called by the .pth line: the finder goes first in sys.meta_path when this is a pytest invocation that
    may be handed off. Never raises."""
    global STARTED
    try:
        import time

        STARTED = time.time()
        main = invocation(list(getattr(sys, "orig_argv", ())))
        if main is None or not allowed():
            return
        if any(a.startswith(_NEVER) for a in sys.argv[1:]):  # sys.argv: ["-m" or the script, arguments...]
            return
        given = " ".join([*sys.argv[1:], os.environ.get("PYTEST_ADDOPTS", "")])
        if "no:fastcollect" in given or "no:pytest_fastcollect" in given:
            return  # `pytest -p no:fastcollect`, the referee: nothing of this package is imported further
        if not any(isinstance(f, _Finder) for f in sys.meta_path):  # (a site folder seen twice)
            sys.meta_path.insert(0, _Finder(main))
    except Exception:  # noqa: BLE001 - the interpreter starts as if the .pth were not there
        return


class _Finder:
    """A meta path finder that finds nothing: its one job is to notice the first import of pytest (the
    `pytest` or `_pytest` package)."""

    def __init__(self, main: dict[str, Any]) -> None:
        self.main = main

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name != "pytest" and name != "_pytest":  # pytest >= 9.1's script imports _pytest.config first
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        code = _try_hand_off(self.main)
        if code is not None:
            raise SystemExit(code)
        return None


def _try_hand_off(main: dict[str, Any]) -> int | None:
    """hand_off(), with every failure before the run started meaning None (run normally)."""
    try:
        from .daemon.handoff import NotServed
    except Exception:  # noqa: BLE001 - a broken installation: the normal start reports it
        return None
    try:
        return hand_off(main)
    except NotServed:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def socket_folder() -> str | None:
    """The daemon socket folder (daemon/paths.py socket_dir, without creating it and without importing
    tempfile: TMPDIR, else /tmp), or None when it does not exist or is not safe (a folder we own, mode 700)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    base = None
    if runtime:
        try:
            st = os.stat(runtime)
            if st.st_uid == uid and os.path.isdir(runtime):
                base = os.path.join(runtime, "pytest-fastcollect")
        except OSError:
            base = None
    if base is None:
        base = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"pytest-fastcollect-{uid}")
    try:
        st = os.lstat(base)
    except OSError:
        return None
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return base


def index_name(orig_argv: list[str], cwd: str, environ: Any) -> str:
    """The index entry of a command: 32 hex digits of SHA-256 over its sys.orig_argv, cwd and environment
    less the volatile variables (keyfacts.is_volatile)."""
    import hashlib

    from .keyfacts import is_volatile

    env = sorted((k, v) for k, v in environ.items() if not is_volatile(k))
    blob = repr((list(orig_argv), cwd, env)).encode("utf-8", "surrogateescape")
    return hashlib.sha256(blob).hexdigest()[:32]


def index_path(folder: str, orig_argv: list[str], cwd: str, environ: Any) -> str:
    return os.path.join(folder, "early", index_name(orig_argv, cwd, environ))


def lookup(folder: str) -> dict[str, Any] | None:
    """This process's index entry {"key", "servable"}, or None."""
    import json

    path = index_path(folder, list(sys.orig_argv), os.getcwd(), os.environ)
    try:
        with open(path, "rb") as fh:
            entry = json.loads(fh.read(4096))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"].isalnum():
        return None
    return entry


def remember(folder: str, key: str, servable: bool, command: tuple[list[str], str, Any] | None = None) -> None:
    """Write the index entry of this process (the in-process client, just before it asks daemon `key` to
    serve the run), or of `command` (orig_argv, cwd, environment: a run watch mode is about to start);
    `servable`: False for runs the early path must leave alone, e.g. those served fresh. Raises OSError."""
    import json

    orig_argv, cwd, environ = command or (list(getattr(sys, "orig_argv", sys.argv)), os.getcwd(), os.environ)
    path = index_path(folder, list(orig_argv), cwd, environ)
    entry = {"key": key, "servable": bool(servable)}
    try:
        with open(path, "rb") as fh:
            if json.loads(fh.read(4096)) == entry:
                return
    except (OSError, ValueError):
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(entry, fh)
    os.replace(tmp, path)


def forget(folder: str) -> None:
    """Remove this process's index entry, if any."""
    try:
        os.unlink(index_path(folder, list(getattr(sys, "orig_argv", sys.argv)), os.getcwd(), os.environ))
    except OSError:
        pass


def hand_off(main: dict[str, Any]) -> int:
    """Serve this process's run by the daemon its index entry names: the run's exit code. Raises
    daemon.handoff.NotServed (or OSError) when it did not start; then nothing was printed."""
    from .daemon.handoff import NotServed, capture_process, connect
    from .daemon.handoff import hand_off as send_run
    from .keyfacts import interpreter_facts
    from .startup import process_measuring

    measured = process_measuring()
    if measured is not None:  # a sitecustomize's tracer, -X importtime: the in-process client runs it locally
        raise NotServed(measured)
    folder = socket_folder()
    entry = lookup(folder) if folder is not None else None
    if folder is None or entry is None or not entry.get("servable"):
        raise NotServed("no early index entry")
    state, fds = capture_process()
    state["main"] = main
    sock = connect(os.path.join(folder, f"{entry['key']}.sock"))
    request = {
        "type": "early",
        "key": entry["key"],
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "sys_path": [str(p) for p in sys.path],
        "process": state,
        "interpreter": interpreter_facts(),
    }
    try:
        return send_run(sock, request, fds, state)
    finally:
        sock.close()
