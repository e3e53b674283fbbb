"""`python -m pytest_fastcollect.parity PATH [--run] [--daemon] [--repeat N] [--plugin-arg=ARG ...] -- [pytest args]`

Exit code 0 when both sides agree, 1 on any difference, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .referee import format_report, referee, without_selection


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m pytest_fastcollect.parity",
        description="Run pytest with and without pytest-fastcollect and diff node IDs, order, outcomes, exit code.",
    )
    parser.add_argument("path", type=Path, help="folder to run pytest in (its cwd)")
    parser.add_argument("--run", action="store_true", help="full run instead of --collect-only -q")
    parser.add_argument("--plugin-arg", action="append", default=[], help="extra argument for the plugin side only")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument(
        "--daemon", action="store_true", help="plugin side through the warm daemon (started if none is ready)"
    )
    parser.add_argument(
        "--prime", action="store_true",
        help="first one plugin-side --collect-only run with the pytest args minus -k/-m (records the collection)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per side (default 3600)")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="run each side N times, alternating, and judge flaky tests by a Fisher test (parity/repeat.py)",
    )
    ns = parser.parse_args(argv)
    if not ns.path.is_dir():
        parser.error(f"not a folder: {ns.path}")
    if ns.repeat < 1:
        parser.error("--repeat takes a whole number >= 1")
    if ns.repeat > 1:
        return _repeated(ns, pytest_args)
    cmp = referee(
        ns.path, pytest_args, run=ns.run, plugin_args=ns.plugin_arg, timeout=ns.timeout, daemon=ns.daemon,
        prime=without_selection(pytest_args) if ns.prime else None,
    )
    if ns.json:
        print(json.dumps({"ok": cmp.ok, "differences": cmp.differences,
                          "plain": {"exit": cmp.plain.returncode, "items": len(cmp.plain.record.get("items", [])),
                                    "seconds": round(cmp.plain.seconds, 3), "summary": cmp.plain.summary},
                          "plugin": {"exit": cmp.plugin.returncode, "items": len(cmp.plugin.record.get("items", [])),
                                     "seconds": round(cmp.plugin.seconds, 3), "summary": cmp.plugin.summary,
                                     "served": cmp.plugin.served}}))
    else:
        print(format_report(cmp))
    return 0 if cmp.ok else 1


def _repeated(ns: argparse.Namespace, pytest_args: list[str]) -> int:
    from .referee import command_args, is_ordered, prepare
    from .repeat import format_verdict, repeat_referee

    args = command_args(pytest_args, ns.run)
    extra, env, record_path = prepare(ns.path, args, ns.plugin_arg, None, ns.timeout, daemon=ns.daemon,
                                      prime=without_selection(pytest_args) if ns.prime else None)
    verdict = repeat_referee(ns.path, args, ns.repeat, extra, env, ns.timeout, record_path=record_path,
                             ordered=is_ordered(pytest_args), daemon=ns.daemon,
                             progress=None if ns.json else lambda line: print(line, file=sys.stderr, flush=True))
    if ns.json:
        print(json.dumps({"ok": verdict.ok, "differences": verdict.differences, "flaky": verdict.flaky,
                          "repeat": ns.repeat,
                          "plain": {"exits": [s.returncode for s in verdict.plain],
                                    "seconds": [round(s.seconds, 3) for s in verdict.plain],
                                    "summaries": [s.summary for s in verdict.plain]},
                          "plugin": {"exits": [s.returncode for s in verdict.plugin],
                                     "seconds": [round(s.seconds, 3) for s in verdict.plugin],
                                     "summaries": [s.summary for s in verdict.plugin],
                                     "served": [s.served for s in verdict.plugin],
                                     "daemon_notes": [s.daemon_note for s in verdict.plugin]}}))
    else:
        print(format_verdict(verdict))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
