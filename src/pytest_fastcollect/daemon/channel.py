"""The messages between a level-1 template and level 0, over the socketpair level 0 gave it (protocol.py
frames), one dataclass each, dispatched by name to the receiver's `on_<name>` method (as pytest-xdist's
DSession dispatches `worker_<callname>`).

From level 1 to level 0:
- Holding: it took the socket over (after its own warm-up succeeded).
- NotReady(state, reason): its warm-up did not end ready (threads alive, other test files); it exits.
- Rebuild(reason, files_digest, counters, dirty_retries): build another level 1 (`dirty_retries`: its own warm-up saw
  files change, the same build again; None: a change it cannot serve), and hold the socket meanwhile.
- Rewarm(reason, files_digest): build a successor that warms with the new code while this one serves.
- Forward(reason, files_digest, worker, request, counters, fresh) with fds [connection, client fds...]:
  serve this run (`fresh`: level 1 is fine, the run needs the project imported fresh; else it cannot
  serve it and wants a rebuild).
- Restart(reason): re-execute the whole daemon (`--daemon-reload`).
- Stop(reason): stop the daemon (idle, `--daemon-stop`, its lock file gone).
- Status(): level 0's status fields; level 0 replies with a plain status frame.

A frame of another type, or with fields of the wrong type, is a ProtocolError for the receiver (logged; the
loop goes on).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from . import protocol


@dataclass
class Message:
    """Base of the channel's messages: `kind` is the frame's "type" and names the handler (on_<kind>, with
    "-" as "_")."""

    kind: ClassVar[str] = ""

    def frame(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass
class Holding(Message):
    kind: ClassVar[str] = "holding"


@dataclass
class NotReady(Message):
    kind: ClassVar[str] = "not-ready"
    state: str = ""
    reason: str = ""


@dataclass
class Rebuild(Message):
    kind: ClassVar[str] = "rebuild"
    reason: str = ""
    files_digest: str | None = None
    counters: dict[str, Any] | None = None
    dirty_retries: int | None = None


@dataclass
class Rewarm(Message):
    kind: ClassVar[str] = "rewarm"
    reason: str = ""
    files_digest: str | None = None


@dataclass
class Forward(Message):
    kind: ClassVar[str] = "forward"
    reason: str = ""
    files_digest: str | None = None
    worker: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] | None = None
    fresh: bool = False


@dataclass
class Restart(Message):
    kind: ClassVar[str] = "restart"
    reason: str = ""


@dataclass
class Stop(Message):
    kind: ClassVar[str] = "stop"
    reason: str = ""


@dataclass
class Status(Message):
    kind: ClassVar[str] = "status"


MESSAGES: dict[str, type[Message]] = {m.kind: m for m in (Holding, NotReady, Rebuild, Rewarm, Forward, Restart, Stop, Status)}

_TYPES = {"str": str, "bool": bool, "int": int}


def parse(frame: dict[str, Any]) -> Message:
    """The Message a frame carries. Raises protocol.ProtocolError for an unknown type or a field of the
    wrong type (an unknown field is ignored)."""
    cls = MESSAGES.get(str(frame.get("type")))
    if cls is None:
        raise protocol.ProtocolError(f"unknown channel message {frame.get('type')!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in frame:
            continue
        value = frame[f.name]
        kinds = [t.strip() for t in str(f.type).split("|")]
        ok = (value is None and "None" in kinds) or any(
            (isinstance(value, dict) and k.startswith("dict")) or (k in _TYPES and isinstance(value, _TYPES[k])
                                                                  and not (k == "int" and isinstance(value, bool)))
            for k in kinds)
        if not ok:
            raise protocol.ProtocolError(f"{cls.kind}: field {f.name} is {type(value).__name__}")
        values[f.name] = value
    return cls(**values)


def dispatch(handler: Any, message: Message, *args: Any) -> None:
    """Call `handler.on_<kind>(message, *args)`."""
    getattr(handler, f"on_{message.kind.replace('-', '_')}")(message, *args)
