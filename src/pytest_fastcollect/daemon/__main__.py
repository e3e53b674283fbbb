"""`python -m pytest_fastcollect.daemon serve [--no-detach] SPEC_JSON`: the daemon process (spawn.py)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from . import runtime

    runtime.record_startup_signals()
    parser = argparse.ArgumentParser(prog="python -m pytest_fastcollect.daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a daemon (started by pytest; not meant to be run by hand)")
    serve.add_argument("--no-detach", action="store_true", help="do not fork once more (re-execution)")
    serve.add_argument("spec", help="the daemon's Spec as JSON")
    args = parser.parse_args(argv)
    if not args.no_detach and os.fork() != 0:
        os._exit(0)  # the second fork of the double fork, before anything heavy is imported
    from .level0 import serve_main

    return serve_main(args.spec)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # never run the warm interpreter's atexit handlers in the daemon
