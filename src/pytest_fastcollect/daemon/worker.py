"""Warm xdist workers: a launcher that stands in for the worker's interpreter and has the daemon fork the
worker from its warm template instead.

A run served by the daemon that becomes an xdist controller (`pytest -n 8` through the daemon) points each
popen node spec's python at this launcher (plugin: pytest_xdist_setupnodes, `launcher_python()`). execnet
then starts, per worker,

    python -m pytest_fastcollect.daemon.worker SOCKET KEY -u -c "import sys;exec(eval(sys.stdin.readline()))"

(execnet's popen gateway appends `-u` and, with PYTHONDONTWRITEBYTECODE, `-B`, then `-c` and its bootstrap
line: execnet/gateway_io.py popen_args). The launcher connects to the daemon's socket, sends a "worker"
request with its stdin/stdout/stderr (SCM_RIGHTS: execnet's pipes), cwd, environment and sys.path, and waits
for the exit code, forwarding SIGINT/SIGTERM/SIGQUIT/SIGHUP to the worker's process group, exactly as a
served run's client does (client.py). The template applies the same checks as for a run (key, ready,
freshness: stale modules are evicted in the child), forks, and the child runs the bootstrap line as
`python -c` would, in a process whose project and test modules are already imported.

If anything fails before the daemon says "started" (no daemon, refused, unexpected arguments), the launcher
replaces itself with the real interpreter and the same arguments (os.execv): the worker then starts cold,
as plain xdist would start it, and nothing has been read from execnet's pipe yet.
"""

from __future__ import annotations

import os
import shlex
import sys
import time

#: Interpreter options execnet's popen gateway may put before `-c` (no other form is served).
ACCEPTED_FLAGS = {"-u", "-B"}


def worker_code(argv: list[str]) -> str | None:
    """The CODE of interpreter arguments `[-u] [-B] -c CODE` (nothing after CODE), else None."""
    args = list(argv)
    while args and args[0] in ACCEPTED_FLAGS:
        args.pop(0)
    if len(args) != 2 or args[0] != "-c":
        return None
    return args[1]


def launcher_python(socket_path: str, key: str) -> str:
    """The `python` value of an execnet popen spec that starts workers through this launcher (a shell-quoted
    command line: execnet splits it with shlex)."""
    return " ".join(shlex.quote(p) for p in (sys.executable, "-m", "pytest_fastcollect.daemon.worker",
                                              socket_path, key))


def _cold(python_args: list[str]) -> None:
    """Become the real interpreter with execnet's arguments (never returns)."""
    os.execv(sys.executable, [sys.executable, *python_args])


def main(argv: list[str]) -> int:
    """argv: SOCKET KEY PYTHON-ARGS... Returns the worker's exit code; falls back to a cold worker."""
    if len(argv) < 2:
        print("usage: python -m pytest_fastcollect.daemon.worker SOCKET KEY PYTHON-ARGS...", file=sys.stderr)
        return 2
    socket_path, key, python_args = argv[0], argv[1], argv[2:]
    if worker_code(python_args) is None:
        _cold(python_args)
    from . import protocol
    from .client import NotServed, capture_process, connect, wait

    try:
        state, fds = capture_process()
        sock = connect(socket_path)
    except NotServed:
        _cold(python_args)
    if "-u" in python_args[: python_args.index("-c")]:  # the cold worker's -u: unbuffered stdout and stderr
        for stream in state["stdio"][1:]:
            if stream is not None:
                stream.update(buffered=False, write_through=True)
    request = {
        "type": "worker",
        "key": key,
        "argv": python_args,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        # `python -c` puts "" (the cwd) first where `python -m` put the cwd's path (neither does with -P)
        "sys_path": list(sys.path) if getattr(sys.flags, "safe_path", False) else ["", *sys.path[1:]],
        "process": {**state, "orig_argv": [sys.executable, *python_args], "main": {"spec": None, "file": None}},
    }
    try:
        protocol.send(sock, request, fds)
        reply, _ = protocol.recv(sock, deadline=time.monotonic() + 30.0)
        if reply.get("type") != "started" or not isinstance(reply.get("pid"), int):
            raise EOFError(f"{reply.get('type')}: {reply.get('reason')}")
    except (OSError, EOFError, protocol.ProtocolError):
        sock.close()
        _cold(python_args)
    try:
        from .procstate import ignored_signals

        return wait(sock, reply["pid"], ignored_signals(state))
    finally:
        sock.close()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
