"""What in this process measures it from interpreter start-up (measuring.py has the environment variables
and the plugins): checked by the in-process client and, before pytest is imported, by the early hand-off
(early.py), so standard-library imports only.
"""

from __future__ import annotations

import sys


def process_measuring() -> str | None:
    """Why this process is measured from its start, or None: a trace or profile function (also a thread's:
    coverage, a debugger), a sys.monitoring tool (Python >= 3.12), tracemalloc tracing, -X importtime.
    Imports nothing (what a plain run would not have: _tracemalloc)."""
    if sys.gettrace() is not None:
        return "a trace function is set (coverage, a debugger or tracer)"
    if sys.getprofile() is not None:
        return "a profile function is set"
    threading = sys.modules.get("threading")
    if threading is not None and (
        getattr(threading, "gettrace", lambda: None)() is not None
        or getattr(threading, "getprofile", lambda: None)() is not None
    ):
        return "a thread trace or profile function is set"
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        tools = [monitoring.get_tool(i) for i in range(6)]
        if any(t is not None for t in tools):
            return f"a sys.monitoring tool is registered ({', '.join(str(t) for t in tools if t is not None)})"
    tracing = sys.modules.get("_tracemalloc")  # not imported here: a plain run would not have it
    if "tracemalloc" in sys._xoptions or (tracing is not None and tracing.is_tracing()):
        return "tracemalloc is tracing"
    if "importtime" in sys._xoptions:
        return "-X importtime"
    return None
