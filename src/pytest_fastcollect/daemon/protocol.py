"""Messages between a client and the daemon: length-prefixed, versioned JSON frames on a Unix stream socket,
with file descriptors passed as SCM_RIGHTS on the first bytes of a frame.

Frame: MAGIC (4 bytes: b"PFC" + protocol version) | body length (uint32, network order) | body (UTF-8 JSON
object with a string "type"). A frame longer than MAX_FRAME, a wrong magic, a body that is not a JSON object,
truncated data or a deadline passed raise ProtocolError; the caller rejects the connection and goes on.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import time
TYPE_CHECKING = False  # typing is not imported at run time: the early hand-off pays for each import
if TYPE_CHECKING:
    from typing import Any, Sequence

PROTOCOL_VERSION = 2
MAGIC = b"PFC" + bytes([PROTOCOL_VERSION])
HEADER = struct.Struct("!4sI")
#: Largest body accepted (bytes). A run request carries argv, the environment and sys.path.
MAX_FRAME = 8 << 20
#: File descriptors a frame may carry (a run request: the caller's inherited fds, procstate.MAX_INHERITED
#: of them besides stdin, stdout and stderr).
MAX_FDS = 3 + 64


class ProtocolError(Exception):
    """A malformed, oversized, truncated or late frame; the message says which."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8", "surrogateescape")
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the limit of {MAX_FRAME}")
    return HEADER.pack(MAGIC, len(body)) + body


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one frame; `fds` ride on its first bytes. Raises OSError when the peer is gone."""
    data = encode(message)
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def recv(sock: socket.socket, *, deadline: float | None = None, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """Read one frame. `deadline`: time.monotonic() value after which ProtocolError is raised (None: wait).
    Returns (message, fds); the caller owns the fds. Raises EOFError when the peer closed before a frame
    started, ProtocolError for anything malformed (received fds are closed then)."""
    fds: list[int] = []
    try:
        header = _read_exact(sock, HEADER.size, deadline, fds, max_fds, eof_ok=True)
        if header is None:
            raise EOFError("connection closed")
        length = _check_header(header)
        body = _read_exact(sock, length, deadline, fds, max_fds, eof_ok=False) or b""
        return decode_body(body), fds
    except BaseException:
        _close_all(fds)
        raise


def _check_header(header: bytes) -> int:
    """The body length of a frame header; ProtocolError for another magic, version or an oversized body."""
    magic, length = HEADER.unpack(header)
    if magic[:3] != MAGIC[:3]:
        raise ProtocolError("not a pytest-fastcollect frame")
    if magic != MAGIC:
        raise ProtocolError(f"protocol version {magic[3]} (this side speaks {PROTOCOL_VERSION})")
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME}")
    return int(length)


def decode_body(body: bytes) -> dict[str, Any]:
    """The message of a frame body. Raises ProtocolError for anything but a JSON object with a string
    "type": invalid UTF-8, invalid JSON, nesting deeper than the decoder's recursion allows (RecursionError),
    an integer beyond the interpreter's digit limit (ValueError), or another top-level value."""
    try:
        message = json.loads(body.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"body is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("body is not an object with a string 'type'")
    return message


def _read_exact(
    sock: socket.socket, n: int, deadline: float | None, fds: list[int], max_fds: int, eof_ok: bool
) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    anc_size = socket.CMSG_SPACE(max(max_fds, 1) * array.array("i").itemsize)
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError("read deadline passed")
            sock.settimeout(remaining)
        else:
            sock.settimeout(None)
        try:
            data, ancdata, flags, _ = sock.recvmsg(n - got, anc_size)
        except socket.timeout:
            raise ProtocolError("read deadline passed") from None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - (len(payload) % received.itemsize)])
                fds.extend(received)
        if flags & socket.MSG_CTRUNC:
            raise ProtocolError("file descriptors truncated")
        if len(fds) > max_fds:
            raise ProtocolError(f"{len(fds)} file descriptors sent, at most {max_fds} accepted")
        if not data:
            if got == 0 and eof_ok:
                return None
            raise ProtocolError(f"connection closed after {got} of {n} bytes")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class FrameReader:
    """One frame read from a non-blocking socket as its bytes arrive, for the daemon's select loop: a
    connection that sends nothing, or half a frame, holds nobody up (each call reads what is there).
    `feed()` returns (message, fds) once the frame is complete, None while it is not; raises EOFError,
    ProtocolError (malformed, too many fds, past `deadline`: time.monotonic()) after closing the fds it
    received. `close()` closes them when the connection is given up."""

    def __init__(self, sock: socket.socket, deadline: float, max_fds: int) -> None:
        self.sock = sock
        self.deadline = deadline
        self.max_fds = max_fds
        self.data = bytearray()
        self.fds: list[int] = []
        self.length: int | None = None
        self._anc = socket.CMSG_SPACE(max(max_fds, 1) * array.array("i").itemsize)

    def expired(self, now: float) -> bool:
        return now >= self.deadline

    def feed(self) -> tuple[dict[str, Any], list[int]] | None:
        try:
            return self._feed()
        except BaseException:
            self.close()
            raise

    def _feed(self) -> tuple[dict[str, Any], list[int]] | None:
        while True:
            total = HEADER.size if self.length is None else HEADER.size + self.length
            if len(self.data) >= total and self.length is not None:
                message = decode_body(bytes(self.data[HEADER.size:total]))  # raises: feed() closes the fds
                fds, self.fds = self.fds, []
                return message, fds
            try:
                chunk, ancdata, flags, _ = self.sock.recvmsg(total - len(self.data), self._anc)
            except (BlockingIOError, InterruptedError):
                if time.monotonic() >= self.deadline:
                    raise ProtocolError("read deadline passed") from None
                return None
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(payload[: len(payload) - (len(payload) % received.itemsize)])
                    self.fds.extend(received)
            if flags & socket.MSG_CTRUNC:
                raise ProtocolError("file descriptors truncated")
            if len(self.fds) > self.max_fds:
                raise ProtocolError(f"{len(self.fds)} file descriptors sent, at most {self.max_fds} accepted")
            if not chunk:
                if not self.data:
                    raise EOFError("connection closed")
                raise ProtocolError(f"connection closed after {len(self.data)} of {total} bytes")
            self.data += chunk
            if self.length is None and len(self.data) >= HEADER.size:
                self.length = _check_header(bytes(self.data[: HEADER.size]))

    def close(self) -> None:
        _close_all(self.fds)
        self.fds = []
