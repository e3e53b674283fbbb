"""Fuzzes the daemon's frame decoder and request validation (daemon/protocol.py, server.validate_run): a
mutation fuzzer in Python (the decoder is Python; no coverage guidance), seeded with real frames.

    python tests/fuzz/fuzz_frames.py [--seconds 20] [--seed N]

Each input is a valid frame (a run request, a worker request, status/ping/stop) mutated by a few random
operations (bit flips, byte insertion and deletion, truncation, splicing, a length header rewritten,
deep nesting, huge integers, invalid UTF-8), sent over a socketpair and read twice: by protocol.recv (the
client's blocking reader, with a deadline) and by protocol.FrameReader (the daemon's non-blocking one).
Properties: each reader returns a dict with a string "type" or raises ProtocolError or EOFError, nothing
else; the two agree; validate_run on a decoded run request returns None or a reason and never raises.
Any other exception is a finding: the input is written to tests/fuzz/findings/ and the exit code is 1.
Prints `Done N runs in S second(s)` like libFuzzer.
"""

from __future__ import annotations

import argparse

import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pytest_fastcollect.daemon import protocol
from pytest_fastcollect.daemon.forkserver import validate_run

STREAM = {"encoding": "utf-8", "errors": "strict", "line_buffering": False, "write_through": False,
          "buffered": True, "name": "<stdout>", "mode": "w"}
SEEDS: list[dict[str, Any]] = [
    {"type": "run", "key": "k" * 20, "argv": ["pytest", "-q"], "cwd": "/tmp", "env": {"PATH": "/usr/bin"},
     "sys_path": ["/tmp"], "files_digest": "d" * 20, "fresh": None,
     "process": {"fds": [], "stdio": [None, None, None], "signals": {"2": "int", "13": "ign"}, "mask": [],
                 "rlimits": {"RLIMIT_NOFILE": [1024, 4096]}, "nice": 0, "affinity": [0, 1], "umask": 18,
                 "orig_argv": ["python", "-m", "pytest"], "main": {"spec": "pytest.__main__", "file": None}}},
    {"type": "worker", "key": "k" * 20, "argv": ["-u", "-c", "import sys"], "cwd": "/", "env": {}, "sys_path": [],
     "process": {"fds": [], "stdio": [None, STREAM, None], "signals": {}, "mask": [15], "rlimits": {},
                 "nice": 5, "affinity": None, "umask": 0, "orig_argv": [], "main": {"spec": None, "file": None}}},
    {"type": "status"},
    {"type": "ping"},
    {"type": "stop"},
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and out:  # bit flip
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert bytes
            i = rng.randrange(len(out) + 1)
            out[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and out:  # delete a range
            i = rng.randrange(len(out))
            del out[i : i + rng.randint(1, 16)]
        elif op == 3 and out:  # truncate
            del out[rng.randrange(len(out)) :]
        elif op == 4:  # rewrite the length header
            out[4:8] = rng.choice([0, 1, len(out), max(0, len(out) - 8), protocol.MAX_FRAME, protocol.MAX_FRAME + 1,
                                   0xFFFFFFFF, rng.randrange(1 << 32)]).to_bytes(4, "big")
        elif op == 5:  # deep nesting inside the body
            depth = rng.choice([10, 500, 1200, 5000])
            body = b'{"type":"ping","x":' + b"[" * depth + b"]" * depth + b"}"
            out = bytearray(protocol.HEADER.pack(protocol.MAGIC, len(body)) + body)
        elif op == 6:  # a huge integer
            body = b'{"type":"run","x":' + b"9" * rng.choice([10, 4300, 4301, 20000]) + b"}"
            out = bytearray(protocol.HEADER.pack(protocol.MAGIC, len(body)) + body)
        elif op == 7 and len(out) > 8:  # invalid UTF-8 in the body
            i = rng.randrange(8, len(out))
            out[i : i + 1] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])
        elif op == 8:  # splice another seed's frame
            other = protocol.encode(rng.choice(SEEDS))
            i = rng.randrange(len(out) + 1)
            out[i:] = other[rng.randrange(len(other)) :]
    return bytes(out)


def _blocking(data: bytes) -> tuple[str, Any]:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        try:
            message, fds = protocol.recv(b, deadline=time.monotonic() + 2.0, max_fds=protocol.MAX_FDS)
            return "ok", message
        except (protocol.ProtocolError, EOFError) as exc:
            return "rejected", type(exc).__name__
    finally:
        a.close()
        b.close()


def _nonblocking(data: bytes) -> tuple[str, Any]:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        b.setblocking(False)
        reader = protocol.FrameReader(b, time.monotonic() + 2.0, protocol.MAX_FDS)
        try:
            while True:
                got = reader.feed()
                if got is not None:
                    return "ok", got[0]
        except (protocol.ProtocolError, EOFError) as exc:
            return "rejected", type(exc).__name__
    finally:
        a.close()
        b.close()


def one(data: bytes) -> None:
    """Run every property on one input; raises AssertionError (or anything else) on a finding."""
    first, second = _blocking(data), _nonblocking(data)
    assert first[0] == second[0], f"readers disagree: {first} vs {second}"
    if first[0] == "ok":
        message = first[1]
        assert isinstance(message, dict) and isinstance(message.get("type"), str)
        assert message == second[1], "readers decoded different messages"
        if message["type"] in ("run", "worker"):
            process = message.get("process")
            fds = process.get("fds") if isinstance(process, dict) else None
            for nfds in {0, 3, len(fds) if isinstance(fds, list) else 0}:
                reason = validate_run(message, nfds)
                assert reason is None or isinstance(reason, str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz_frames.py")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=None)
    ns = parser.parse_args(argv)
    seed = ns.seed if ns.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    frames = [protocol.encode(s) for s in SEEDS]
    for frame in frames:  # the seeds themselves decode and validate
        one(frame)
    runs, findings = 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < ns.seconds:
        data = mutate(rng.choice(frames), rng)
        runs += 1
        try:
            one(data)
        except Exception as exc:  # noqa: BLE001 - a finding
            findings += 1
            folder = Path(__file__).parent / "findings"
            folder.mkdir(exist_ok=True)
            (folder / f"frame-{seed}-{runs}.bin").write_bytes(data)
            print(f"FINDING: {type(exc).__name__}: {exc} (input saved, {len(data)} bytes)", file=sys.stderr)
    print(f"Done {runs} runs in {time.monotonic() - t0:.0f} second(s) (seed {seed}, {findings} findings)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
