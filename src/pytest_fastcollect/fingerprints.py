"""One rule for "has this file changed since it was read": the records (validity.py) and the daemon
(daemon/freshness.py) both use it.

A Fingerprint is a file's stat identity (mtime_ns, ctime_ns, size, inode), the XXH3-64 of its bytes, and
`read_ns`: when its content was read by what depends on it (the import of a module: for a record, the start
of the run that recorded it; for the daemon, the start of its warm-up). `changed()` stats every file (C++,
one pass); a file whose stat differs is hashed, and counts as changed only if its bytes differ (a touch, or
a checkout that restores the same bytes, changes nothing: its fingerprint is refreshed).

Two windows before `read_ns` (git's "racily clean" entries, Documentation/technical/racy-git.txt):
- written at or after the read, less COARSE_NS (file-system timestamps come from the kernel's coarse clock,
  one tick, 4 ms at 250 Hz, behind time.time_ns()): the file may have changed after it was read, so what was
  read may be older than what was hashed. Such a fingerprint is *untrusted*: it counts as changed whatever
  its bytes, until something reads the file again (an edit made while a recording run collected, or while
  the daemon warmed).
- written less than RACY_MARGIN_NS before the read: a later write in the same timestamp tick could keep the
  stat, so the bytes are always hashed (*racy*), never judged by the stat alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from . import _core

#: A file modified less than this before it was read is always hashed (its stat may hide a later write).
RACY_MARGIN_NS = 1_000_000_000
#: A file modified less than this before it was read (or after) may have been written after the read.
COARSE_NS = 50_000_000


@dataclass(frozen=True)
class Fingerprint:
    """A file as it was when read (see the module docstring). `xxh3` is None for a file that did not exist
    or could not be read."""

    exists: bool
    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int
    xxh3: int | None
    read_ns: int

    @property
    def racy(self) -> bool:
        """Written less than RACY_MARGIN_NS before it was read: hash it, whatever the stat says."""
        return self.exists and max(self.mtime_ns, self.ctime_ns) >= self.read_ns - RACY_MARGIN_NS

    @property
    def untrusted(self) -> bool:
        """Written when or after it was read (less COARSE_NS): changed, whatever its bytes."""
        return self.exists and max(self.mtime_ns, self.ctime_ns) >= self.read_ns - COARSE_NS

    def same_stat(self, other: object) -> bool:
        """Whether `other` (a _core.FileFingerprint or a Fingerprint) has this stat identity."""
        return (bool(getattr(other, "exists")) == self.exists and
                (getattr(other, "mtime_ns"), getattr(other, "ctime_ns"), getattr(other, "size"), getattr(other, "inode"))
                == (self.mtime_ns, self.ctime_ns, self.size, self.inode))

    def to_list(self) -> list[int]:
        """[mtime_ns, ctime_ns, size, inode, xxh3, read_ns]: the records' JSON form (existing files only)."""
        return [self.mtime_ns, self.ctime_ns, self.size, self.inode, int(self.xxh3 or 0), self.read_ns]

    @classmethod
    def from_list(cls, values: Iterable[int]) -> Fingerprint:
        mtime, ctime, size, inode, xxh3, read_ns = (int(v) for v in values)
        return cls(True, mtime, ctime, size, inode, xxh3, read_ns)


def _of(fp: object, read_ns: int) -> Fingerprint:
    return Fingerprint(bool(getattr(fp, "exists")), int(getattr(fp, "mtime_ns")), int(getattr(fp, "ctime_ns")),
                       int(getattr(fp, "size")), int(getattr(fp, "inode")), getattr(fp, "xxh3"), read_ns)


def take(paths: list[str], read_ns: int, previous: Mapping[str, Fingerprint] | None = None) -> dict[str, Fingerprint]:
    """path -> Fingerprint of each of `paths` (missing files: exists False), read at `read_ns`. A file whose
    stat equals its `previous` fingerprint, which is not racy, keeps that hash (the bytes are not read)."""
    previous = previous or {}
    out: dict[str, Fingerprint] = {}
    to_hash: list[str] = []
    for path, fp in zip(paths, _core.fingerprint_files(paths, False, 0)):
        prev = previous.get(path)
        if not getattr(fp, "exists"):
            out[path] = _of(fp, read_ns)
        elif prev is not None and prev.xxh3 is not None and not prev.racy and prev.same_stat(fp):
            out[path] = replace(prev, read_ns=read_ns)
        else:
            to_hash.append(path)
    for path, fp in zip(to_hash, _core.fingerprint_files(to_hash, True, 0)):
        out[path] = _of(fp, read_ns)
    return out


def changed(entries: Mapping[str, Fingerprint], refresh: dict[str, Fingerprint] | None = None) -> set[str]:
    """The paths among `entries` that changed since their fingerprint was taken: created, deleted, other
    bytes, or untrusted (module docstring). Stat first; a differing stat, or a racy entry, is hashed. `refresh`: filled with
    new fingerprints for files whose stat moved but whose bytes did not (store them to skip the hash next
    time)."""
    paths = list(entries)
    out: set[str] = set()
    suspects: list[str] = []
    for path, fp in zip(paths, _core.fingerprint_files(paths, False, 1)):
        entry = entries[path]
        if entry.untrusted or bool(getattr(fp, "exists")) != entry.exists:
            out.add(path)
        elif entry.exists and (entry.racy or not entry.same_stat(fp)):
            suspects.append(path)
    for path, fp in zip(suspects, _core.fingerprint_files(suspects, True, 1)):
        entry = entries[path]
        if getattr(fp, "exists") and getattr(fp, "xxh3") is not None and getattr(fp, "xxh3") == entry.xxh3:
            if refresh is not None:
                # the same bytes as were read: trusted (not untrusted however recent the touch), and still
                # hashed each time while the touch is within RACY_MARGIN_NS (racy)
                refresh[path] = _of(fp, now_ns() + COARSE_NS)
        else:
            out.add(path)
    return out


def now_ns() -> int:
    return time.time_ns()
