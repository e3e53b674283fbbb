"""The daemon's part in one pytest invocation: before the initial conftests (serve the run through a
daemon, or answer a --daemon-* command) and at the end (start a daemon for the next run).

Rules (docs/user-guide.md): a run uses or auto-starts a daemon only when it was started by the `pytest`
command or `python -m pytest` (not an in-process pytest.main()), is not an xdist worker, not --help or
--version, the plugin is on, and the auto-daemon setting is on: --fastcollect-auto-daemon /
--no-fastcollect-auto-daemon, else ini fastcollect_auto_daemon (default true), except that the environment
variable CI turns the default off (only the command-line flag turns it back on).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from . import runtime

COMMANDS = ("daemon_start", "daemon_stop", "daemon_status", "daemon_health", "daemon_reload")
DEFAULT_IDLE_TIMEOUT = 1800.0


@dataclass
class Decision:
    """What this run decided about the daemon: `note` is the one line shown at -v; `autostart` whether to
    start a daemon at the end of the run (the warm-up arguments are in `warm`)."""

    note: str | None = None
    autostart: bool = False
    target: Any = None
    warm: list[str] | None = None
    #: in a run child, for the run the daemon forked it for (not for a pytest.main() nested in a test)
    served: Any = None
    replayer: Any = None
    #: set in pytest_configure: a run that stopped before (a usage error) starts no daemon
    configured: bool = False


def auto_off_reason(config: pytest.Config, options: Any) -> str | None:
    """Why runs do not go through the daemon by default, or None when they do: the command-line flag
    (`--[no-]fastcollect-auto-daemon`) wins, then `CI` in the environment, then the ini key."""
    flag = getattr(options, "fastcollect_auto_daemon", None)
    if flag is not None:
        return None if flag else "--no-fastcollect-auto-daemon"
    if os.environ.get("CI"):
        return "CI is set"
    return None if config.getini("fastcollect_auto_daemon") else "fastcollect_auto_daemon = false"


def _non_negative_ini(config: pytest.Config, name: str, default: str, parse: Any, what: str) -> Any:
    """ini `name` parsed by `parse` (int or float); a bad or negative value is a UsageError."""
    text = str(config.getini(name) or default).strip()
    try:
        value = parse(text)
    except ValueError:
        raise pytest.UsageError(f"{name}: not a {what}: {text!r}") from None
    if value < 0:
        raise pytest.UsageError(f"{name}: must be >= 0, got {text!r}")
    return value


def max_memory(config: pytest.Config) -> int:
    """ini fastcollect_daemon_max_memory in MiB (0 = no limit); a bad value is a UsageError."""
    return int(_non_negative_ini(config, "fastcollect_daemon_max_memory", "0", int, "whole number of MiB"))


def idle_timeout(config: pytest.Config) -> float:
    """ini fastcollect_daemon_idle_timeout in seconds (0 = never); a bad value is a UsageError."""
    return float(_non_negative_ini(config, "fastcollect_daemon_idle_timeout", str(DEFAULT_IDLE_TIMEOUT), float,
                                   "number of seconds"))


def _command(options: Any) -> str | None:
    given = [c for c in COMMANDS if getattr(options, c, False)]
    if len(given) > 1:
        raise pytest.UsageError("use one of --daemon-start/-stop/-status/-health/-reload at a time")
    return given[0] if given else None


def before_run(config: pytest.Config, parser: pytest.Parser, enabled: bool) -> Decision:
    """Called from pytest_load_initial_conftests. Leaves with SystemExit(code) after a --daemon-* command or
    a run the daemon served; otherwise returns what the local run should do at its end."""
    options = config.known_args_namespace
    command = _command(options)
    if runtime.ROLE == "child":
        served, replayer = runtime.claim()
        if served is not None and served.early is not None:  # an early hand-off: serve it, or refuse it now
            hold, served.early = served.early, None
            reason = _early_refusal_safe(config, parser, enabled, hold)
            if reason is not None:
                hold.refuse(reason)
            hold.start()
            served.was_early = True
        return Decision(served=served, replayer=replayer)
    if runtime.ROLE != "local":
        return Decision()
    if command is None:
        if getattr(options, "help", False) or getattr(options, "version", False):
            return Decision()
        if not enabled or "PYTEST_XDIST_WORKER" in os.environ:
            return Decision()
        off = auto_off_reason(config, options)
        if off is not None:
            return Decision(note=f"off ({off})")
        if not sys.platform.startswith("linux"):
            return Decision(note="off (Linux only)")
        if not in_console_main_safe():
            return Decision(note="off (pytest.main() from another program)")
    from .client import NotServed, serve_run, target
    from .paths import DaemonPathError

    try:
        from ..paths import positional_args

        tgt = target(config, positional_args(parser, config.invocation_params.args))
    except DaemonPathError as exc:
        if command is not None:
            raise pytest.UsageError(f"pytest-fastcollect daemon: {exc}") from None
        return Decision(note=f"daemon unavailable: {exc}")
    if command is not None:
        raise SystemExit(_run_command(command, config, parser, tgt))
    from ..measuring import fresh_reason, local_reason, plugin_dists

    local = local_reason()
    if local is not None:  # measured from interpreter start-up: no served run, and no daemon started for it
        return Decision(note=f"ran locally ({local})")
    try:
        fresh = fresh_reason(options, plugin_dists(config))
        if fresh is None and getattr(options, "fastcollect_daemon_fresh", False):
            fresh = "--fastcollect-daemon-fresh"
        _remember_early(config, tgt, servable=fresh is None)
        code = serve_run(tgt, fresh=fresh)
    except NotServed as exc:
        reason = str(exc)
        if reason == "stale socket":
            from .spawn import remove_stale_socket

            remove_stale_socket(tgt.files)
        return Decision(note=f"ran locally ({reason})", autostart=True, target=tgt, warm=_warm(parser, config))
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    raise SystemExit(code)


def early_refusal(config: pytest.Config, parser: pytest.Parser, enabled: bool, hold: Any) -> str | None:
    """Why the run child of an early hand-off (../early.py, hold.py) must not serve its run, or None: every
    rule the in-process client applies (before_run), from the run's own configuration, and the daemon the
    client's index entry named must be the one this run's key gives, with the same test files."""
    options = config.known_args_namespace
    if _command(options) is not None:
        return "a --daemon-* command"
    if getattr(options, "help", False) or getattr(options, "version", False):
        return "--help or --version"
    if not enabled:
        return "the plugin is off"
    if getattr(options, "daemon_watch", False):
        return "watch mode"
    off = auto_off_reason(config, options)
    if off is not None:
        return off
    if not config.getini("fastcollect_early_handoff"):
        return "fastcollect_early_handoff = false"
    if not in_console_main_safe():
        return "not pytest's console entry point"
    from ..measuring import fresh_reason, local_reason, plugin_dists
    from ..paths import positional_args
    from .client import target

    local = local_reason()
    if local is not None:
        return local
    if fresh_reason(options, plugin_dists(config)) is not None or getattr(options, "fastcollect_daemon_fresh", False):
        return "the run needs the project imported fresh"
    tgt = target(config, positional_args(parser, config.invocation_params.args), create=False,
                 interpreter=hold.interpreter)
    if tgt.key != hold.key:
        return "this run's key is another daemon's"
    if not hold.files_digest or tgt.files_digest != hold.files_digest:
        return "test files added or removed since the warm-up"
    return None


def _early_refusal_safe(config: pytest.Config, parser: pytest.Parser, enabled: bool, hold: Any) -> str | None:
    try:
        return early_refusal(config, parser, enabled, hold)
    except Exception as exc:  # noqa: BLE001 - a usage error included: the normal start reports it
        return f"deciding failed: {type(exc).__name__}: {exc}"


def _remember_early(config: pytest.Config, tgt: Any, servable: bool) -> None:
    """The early index entry of this command (../early.py) names daemon `tgt`; removed with ini
    fastcollect_early_handoff = false. Never raises."""
    from .. import early

    try:
        if config.getini("fastcollect_early_handoff"):
            early.remember(str(tgt.files.folder), tgt.key, servable)
        else:
            early.forget(str(tgt.files.folder))
    except (OSError, ValueError):
        pass


def in_console_main_safe() -> bool:
    from .client import in_console_main

    try:
        return in_console_main()
    except Exception:  # noqa: BLE001
        return False


def _warm(parser: pytest.Parser, config: pytest.Config) -> list[str] | None:
    from .spawn import warm_args

    try:
        return warm_args(parser, config.invocation_params.args, config.known_args_namespace)
    except Exception:  # noqa: BLE001 - pytest will report a bad command line itself
        return None


def _run_command(command: str, config: pytest.Config, parser: pytest.Parser, tgt: Any) -> int:
    from . import control
    from .spawn import make_spec

    out = sys.stdout
    if command == "daemon_status":
        return control.status(tgt, out)
    if command == "daemon_stop":
        from ..paths import positional_args

        if positional_args(parser, config.invocation_params.args):
            return control.stop(tgt, out)
        return control.stop_all(tgt, out)  # no paths: every daemon of the project
    if command == "daemon_health":
        return control.health(tgt, out)
    if command == "daemon_reload":
        return control.reload(tgt, out)
    warm = _warm(parser, config)
    if warm is None:
        raise pytest.UsageError("--daemon-start: cannot read the command line")
    spec = make_spec(
        str(tgt.files.folder),
        tgt.key,
        tgt.rootdir,
        str(config.invocation_params.dir),
        warm,
        idle_timeout(config),
        "--daemon-start",
        tgt.files_digest,
        max_memory(config),
    )
    return control.start(tgt, spec, out)


def after_run(config: pytest.Config, decision: Decision) -> None:
    """Called when the local run ends: start a daemon for the next run if this one decided so. Never
    raises."""
    if not decision.autostart or not decision.configured or decision.target is None or decision.warm is None:
        return
    try:
        from .spawn import make_spec, spawn

        tgt = decision.target
        spec = make_spec(
            str(tgt.files.folder),
            tgt.key,
            tgt.rootdir,
            str(config.invocation_params.dir),
            decision.warm,
            idle_timeout(config),
            "auto-start",
            tgt.files_digest,
            max_memory(config),
        )
        spawn(spec, tgt.files)
    except Exception:  # noqa: BLE001 - the next run is simply local again
        pass
