"""The key's socket: bound by one process of the daemon at a time, handed over atomically, closed only if it
is still the one at the path.

Hand-over (docs/how-it-works.md, "Layered templates"): the new holder binds `<key>.next` (a name of the same
length, in the same 0700 folder) and renames it over `<key>.sock`, so a client always finds a socket that
answers; the previous holder then serves what connected before the rename and closes its own, without
unlinking the path (its inode is no longer the path's). Every connection's peer uid is checked
(SO_PEERCRED): another user's connection is refused before a byte is read.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Callable

from .paths import DaemonFiles

#: Connections the kernel queues before accept().
BACKLOG = 64


class Listener:
    """A bound, listening socket at `files.socket` (select()-able: fileno())."""

    def __init__(self, files: DaemonFiles, sock: socket.socket, inode: int) -> None:
        self.files = files
        self.sock = sock
        self.inode = inode

    @classmethod
    def bind(cls, files: DaemonFiles, handover: bool, before_rename: Callable[[], None] | None = None) -> Listener:
        """Listen on the key's socket, mode 0600. Taking it over from the process that holds it
        (`handover`): bind `<key>.next`, call `before_rename` (the last moment the holder still answers),
        rename it over `<key>.sock`. Raises OSError when the folder cannot be written."""
        path = str(files.socket)
        bound = path[: -len(".sock")] + ".next" if handover and path.endswith(".sock") else path
        try:
            os.unlink(bound)  # we hold the lock: a socket file left at that name is stale
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(bound)
        finally:
            os.umask(old)
        os.chmod(bound, 0o600)
        sock.listen(BACKLOG)
        if bound != path:
            if before_rename is not None:
                before_rename()
            os.rename(bound, path)
        return cls(files, sock, os.stat(path).st_ino)

    def fileno(self) -> int:
        return self.sock.fileno()

    def detach(self) -> int:
        """The fd, which this object forgets (a forked child closes it without unlinking anything)."""
        return self.sock.detach()

    def accept(self) -> tuple[socket.socket, int, int] | None:
        """(connection, peer pid, peer uid) of the next connection, non-blocking; None if there is none or
        the peer's credentials cannot be read (the connection is closed then)."""
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return None
        try:
            pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        except OSError:
            conn.close()
            return None
        return conn, pid, uid

    def owns_path(self) -> bool:
        """Whether the socket file at the path is this one (not a successor's)."""
        try:
            return os.stat(self.files.socket).st_ino == self.inode
        except OSError:
            return False

    def path_gone(self) -> bool:
        """Whether no file is at the socket path (deleted by a tmp cleaner)."""
        return not os.path.lexists(self.files.socket)

    def close(self) -> None:
        """Stop listening; unlink the path only if it is still this socket."""
        if self.owns_path():
            try:
                os.unlink(self.files.socket)
            except OSError:
                pass
        self.sock.close()
