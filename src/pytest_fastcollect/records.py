"""Recorded collection: per test file, the items pytest really produced, stored beside the discovery cache.

A record holds, for one test file (a `pytest.Module`), every item's node ID, the names pytest's `-k` matches
(`KeywordMatcher.from_item`: _pytest/mark/__init__.py) and its marks as `-m` sees them (`item.iter_markers()`),
as they were after every conftest and plugin `pytest_collection_modifyitems` and before deselection. Records
are only ever used together with a validity check (validity.py): a record says nothing once anything that
could change it has changed.

Storage: `records-v<SCHEMA>.sqlite` in the discovery cache's folder (cache.CacheLocation), through Python's
sqlite3, WAL mode, a busy timeout. Tables:
- `files(run_key, path, manifest, fp, digest, ids_digest, data)`, primary key (run_key, path): `run_key` is
  validity.run_key() of the run that wrote it (an xdist run's key differs from the same run's without
  xdist: flow.py); `manifest` the id of the project-module manifest it depends on; `fp` the file's
  fingerprint (JSON [mtime_ns, ctime_ns, size, inode, xxh3, recorded_at_ns]); `data` the items (JSON, see
  FileRecord), `digest` a BLAKE2b-128 hex digest of `data` and `ids_digest` one of its node IDs in order
  (nodeids_digest()): a run compares digests and decodes `data` only for what it needs (a file it leaves
  unimported, or an expression it has not evaluated on that record yet).
- `decisions(query, path, digest, selectable)`: whether the record with `digest` of `path` holds an item the
  expressions `query` (selection.query_key()) may select: an evaluation is done once per record and query.
  The newest DECISION_QUERIES queries are kept.
- `manifests(id PRIMARY KEY, data)`: JSON {"files": {path: [mtime_ns, ctime_ns, size, inode, xxh3,
  recorded_at_ns]}}.
- `keys(run_key PRIMARY KEY, written_ns)`: when each run key last wrote; the rows of all but the newest
  MAX_KEYS keys are deleted (switching between a few option sets keeps each one's records).
- `flags(run_key, name)`: facts learnt about a run key, e.g. CROSS_IMPORT (importing some test modules
  changes what others collect: records must not be used to skip files).
Never raises to the caller: a corrupt or foreign file is deleted and rebuilt (read-write) or ignored
(read-only); a busy database skips writing for this run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from typing import Any, Iterable, NamedTuple

SCHEMA = 2
#: how many distinct -k/-m queries keep their per-file decisions
DECISION_QUERIES = 64
#: how many run keys keep their records
MAX_KEYS = 8
#: Flag: importing some test modules changes what other test modules collect (seen once for this run key).
CROSS_IMPORT = "cross-import"
_BUSY_MS = 5000

#: One mark: (name, kwargs). kwargs is None when a value is not a JSON scalar (then `-m name(k=v)` is unknown).
Mark = tuple[str, "dict[str, Any] | None"]


class ItemRecord(NamedTuple):
    """One collected item: `nodeid`; `names`: the -k names beyond the file's own (FileRecord.names);
    `marks`: every mark of item.iter_markers(), closest first, as (name, kwargs) pairs (lists once decoded)."""

    nodeid: str
    names: list[str]
    marks: list[Any]


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def nodeids_digest(nodeids: Iterable[str]) -> str:
    """Digest of a file's node IDs in collection order (what `ids_digest` of a stored record holds)."""
    return _digest("\n".join(nodeids))


class FileRecord:
    """The recorded collection of one test file. `names`: the -k names every item of the file shares (the
    module and its parent directories/packages, as KeywordMatcher.from_item sees them); `items`: ItemRecords
    in collection order. A record loaded from the store keeps its JSON text and decodes it on first access
    of `names` or `items` (ValueError when it does not decode); `fp`, `manifest`, `digest` and `ids_digest`
    are set by the store on load."""

    __slots__ = ("path", "_names", "_items", "_text", "fp", "manifest", "digest", "ids_digest")

    def __init__(self, path: str, names: list[str] | None = None, items: list[ItemRecord] | None = None,
                 *, text: str | None = None) -> None:
        self.path = path
        self._names = names
        self._items = items
        self._text = text
        self.fp: list[int] = []
        self.manifest = ""
        self.digest = ""
        self.ids_digest = ""

    def _decode(self) -> None:
        doc = json.loads(self._text or "")  # our own encoding: types are checked where the values are used
        items = list(map(ItemRecord._make, doc["items"]))
        if not isinstance(doc["names"], list) or any(len(i) != 3 for i in items):
            raise ValueError("malformed record")
        self._names, self._items, self._text = doc["names"], items, None

    @property
    def names(self) -> list[str]:
        if self._names is None:
            self._decode()
        return self._names  # type: ignore[return-value]

    @property
    def items(self) -> list[ItemRecord]:
        if self._items is None:
            self._decode()
        return self._items  # type: ignore[return-value]

    def encode(self) -> str:
        if self._text is not None:
            return self._text
        return json.dumps(
            {"names": self.names, "items": [[i.nodeid, i.names, [list(m) for m in i.marks]] for i in self.items]},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, path: str, text: str) -> "FileRecord":
        """A record decoded now (ValueError, KeyError or TypeError when `text` is not one)."""
        record = cls(path, text=text)
        record._decode()
        return record


def json_scalar_kwargs(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """kwargs if every value is a JSON scalar that compares with `==` the way pytest's MarkMatcher does for
    the values an expression can hold (str, int, bool, None; float compares equal to int), else None."""
    for value in kwargs.values():
        if value is not None and type(value) not in (str, int, bool, float):
            return None
    return dict(kwargs)


def store_path(cache_path: str) -> str:
    """The records database beside the discovery cache file `cache_path`."""
    return os.path.join(os.path.dirname(cache_path), f"records-v{SCHEMA}.sqlite")


def remove_store(cache_path: str, older_only: bool = False) -> str | None:
    """Delete the records database beside `cache_path` and its `-wal`/`-shm` files, and those of earlier
    schemas (--fastcollect-cache-clear; `older_only`: only the earlier schemas' files, when this schema's
    database is created). Returns an error line, or None (also when there was nothing to delete)."""
    folder = os.path.dirname(cache_path)
    versions = range(1, SCHEMA) if older_only else range(1, SCHEMA + 1)
    for version in versions:
        path = os.path.join(folder, f"records-v{version}.sqlite")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
            except OSError as exc:
                return f"cannot delete {path + suffix}: {exc.strerror}"
    return None


class RecordStore:
    """The records database of one rootdir. `read_only`: open with mode=ro and never write (xdist workers,
    read-only checkouts). `warning` holds one line when the file was rebuilt or could not be used."""

    def __init__(self, path: str, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self.warning = ""
        self._db: sqlite3.Connection | None = None
        #: set once the file proved unusable for this run (then every method answers "nothing")
        self._unusable = False
        self._connection()

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection, opened (again) on demand: a database that does not open is set aside and
        rebuilt (read-write) or left unused for this run (read-only)."""
        if self._db is not None or self._unusable:
            return self._db
        try:
            self._db = self._open()
        except sqlite3.Error as exc:
            if self.read_only:
                if "no records yet" not in str(exc):
                    self.warning = f"records unusable ({exc}); every file is imported"
                self._unusable = True
                return None
            self._set_aside()
            try:
                self._db = self._open()
                self.warning = f"records rebuilt ({exc})"
            except sqlite3.Error as exc2:
                self.warning = f"records unusable ({exc2}); every file is imported"
                self._unusable = True
        return self._db

    def _failed(self, exc: sqlite3.Error, what: str) -> None:
        """A statement failed. A corrupt file (sqlite3.DatabaseError itself: "database disk image is
        malformed", "file is not a database") is set aside as `<file>.corrupt` and rebuilt for the next use;
        anything else (busy, locked, read-only) only skips this use."""
        if type(exc) is not sqlite3.DatabaseError:
            self.warning = f"records not {what} ({exc})"
            return
        self.release()
        if self.read_only:
            self.warning = f"records unusable ({exc}); every file is imported"
            self._unusable = True
            return
        self._set_aside()
        self.warning = f"records were corrupt ({exc}): set aside as {os.path.basename(self.path)}.corrupt and rebuilt"

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            if not os.path.exists(self.path):
                raise sqlite3.OperationalError("no records yet")
            db = self._open_read_only()
        else:
            db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA):
                raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA}")
            if version == 0 and self.read_only:
                raise sqlite3.OperationalError("no records yet")
            if not self.read_only:
                if version == 0:
                    db.execute("PRAGMA journal_mode=WAL")
                    remove_store(self.path, older_only=True)
                with db:
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS files(run_key TEXT NOT NULL, path TEXT NOT NULL, "
                        "manifest TEXT NOT NULL, fp TEXT NOT NULL, digest TEXT NOT NULL, "
                        "ids_digest TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY(run_key, path))"
                    )
                    db.execute("CREATE TABLE IF NOT EXISTS keys(run_key TEXT PRIMARY KEY, written_ns INTEGER NOT NULL)")
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS decisions(query TEXT NOT NULL, path TEXT NOT NULL, "
                        "digest TEXT NOT NULL, selectable INTEGER NOT NULL, PRIMARY KEY(query, path))"
                    )
                    db.execute("CREATE TABLE IF NOT EXISTS manifests(id TEXT PRIMARY KEY, data TEXT NOT NULL)")
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS flags(run_key TEXT NOT NULL, name TEXT NOT NULL, "
                        "PRIMARY KEY(run_key, name))"
                    )
                    if version == 0:
                        db.execute(f"PRAGMA user_version={SCHEMA}")
            db.execute("SELECT count(*) FROM files").fetchone()  # a corrupt file fails here
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        """mode=ro, or, where SQLite cannot create the WAL index beside a read-only file (a read-only mount),
        immutable=1 (the discovery cache does the same: store/discovery_cache.cpp)."""
        from urllib.parse import quote

        uri = f"file:{quote(self.path)}"
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=_BUSY_MS / 1000)
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=_BUSY_MS / 1000)

    def _set_aside(self) -> None:
        """Rename the database (and its -wal/-shm) to `<name>.corrupt` (replacing an older one), as the
        discovery cache does; a file that cannot be renamed is deleted."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(self.path + suffix, self.path + ".corrupt" + suffix)
            except FileNotFoundError:
                pass
            except OSError:
                try:
                    os.unlink(self.path + suffix)
                except OSError:
                    pass

    def release(self) -> None:
        """Close the connection until the next use (no fd of ours stays open while tests run)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        self.release()

    def load(self, run_key: str) -> tuple[dict[str, FileRecord], dict[str, dict[str, Any]]]:
        """(records by path, manifests by id) written under `run_key`. Empty on any database error (with a
        warning); a row whose fingerprint does not decode is left out. The items stay JSON text until a
        record's `items` are read (FileRecord)."""
        db = self._connection()
        if db is None:
            return {}, {}
        records: dict[str, FileRecord] = {}
        manifests: dict[str, dict[str, Any]] = {}
        try:
            for path, manifest, fp, digest, ids_digest, data in db.execute(
                "SELECT path, manifest, fp, digest, ids_digest, data FROM files WHERE run_key = ?", (run_key,)
            ):
                try:
                    fingerprint = [int(x) for x in json.loads(fp)]
                except (ValueError, TypeError):
                    continue
                record = FileRecord(path, text=data)
                record.fp, record.manifest, record.digest, record.ids_digest = fingerprint, manifest, digest, ids_digest
                records[path] = record
            wanted = sorted({r.manifest for r in records.values()})
            for mid in wanted:
                row = db.execute("SELECT data FROM manifests WHERE id = ?", (mid,)).fetchone()
                if row is not None:
                    try:
                        manifests[mid] = json.loads(row[0])
                    except ValueError:
                        pass
        except sqlite3.Error as exc:
            self._failed(exc, "read")
            return {}, {}
        return records, manifests

    def flags(self, run_key: str) -> set[str]:
        """Flags set for `run_key` (empty on any error)."""
        db = self._connection()
        if db is None:
            return set()
        try:
            return {r[0] for r in db.execute("SELECT name FROM flags WHERE run_key = ?", (run_key,))}
        except sqlite3.Error as exc:
            self._failed(exc, "read")
            return set()

    def set_flag(self, run_key: str, name: str) -> bool:
        db = None if self.read_only else self._connection()
        if db is None:
            return False
        try:
            with db:
                db.execute("INSERT OR IGNORE INTO flags(run_key, name) VALUES (?, ?)", (run_key, name))
                db.execute("INSERT OR REPLACE INTO keys(run_key, written_ns) VALUES (?, ?)",
                           (run_key, time.time_ns()))
        except sqlite3.Error as exc:
            self._failed(exc, "written")
            return False
        return True

    def save(
        self,
        run_key: str,
        manifest_id: str,
        manifest: dict[str, Any],
        rows: Iterable[tuple[FileRecord, list[int]]],
        forget: Iterable[str] = (),
    ) -> bool:
        """Write `rows` ((record, fingerprint)) under `run_key` and `manifest`, delete the rows of `forget`
        (files whose collection can no longer be trusted), and drop manifests no row uses. One transaction;
        False (with a warning) when the database is busy or unusable."""
        db = None if self.read_only else self._connection()
        if db is None:
            return False
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO manifests(id, data) VALUES (?, ?)",
                    (manifest_id, json.dumps(manifest, separators=(",", ":"))),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO files(path, run_key, manifest, fp, digest, ids_digest, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        # a record from an xdist worker comes with its ids_digest: not decoded again here
                        (r.path, run_key, manifest_id, json.dumps(fp), _digest(text),
                         r.ids_digest or nodeids_digest(i.nodeid for i in r.items), text)
                        for r, fp, text in ((r, fp, r.encode()) for r, fp in rows)
                    ],
                )
                db.executemany("DELETE FROM files WHERE run_key = ? AND path = ?", [(run_key, p) for p in forget])
                db.executemany("DELETE FROM decisions WHERE path = ?", [(p,) for p in forget])
                db.execute("INSERT OR REPLACE INTO keys(run_key, written_ns) VALUES (?, ?)",
                                 (run_key, time.time_ns()))
                db.execute(
                    "DELETE FROM keys WHERE run_key NOT IN "
                    "(SELECT run_key FROM keys ORDER BY written_ns DESC LIMIT ?)", (MAX_KEYS,)
                )
                db.execute("DELETE FROM files WHERE run_key NOT IN (SELECT run_key FROM keys)")
                db.execute("DELETE FROM flags WHERE run_key NOT IN (SELECT run_key FROM keys)")
                db.execute("DELETE FROM manifests WHERE id NOT IN (SELECT DISTINCT manifest FROM files)")
        except sqlite3.Error as exc:
            self._failed(exc, "written")
            return False
        return True

    def decisions(self, query: str) -> dict[str, tuple[str, bool]]:
        """path -> (record digest, selectable) of the decisions stored for `query` (empty on any error)."""
        db = self._connection()
        if db is None:
            return {}
        try:
            return {
                path: (digest, bool(sel))
                for path, digest, sel in db.execute(
                    "SELECT path, digest, selectable FROM decisions WHERE query = ?", (query,)
                )
            }
        except sqlite3.Error as exc:
            self._failed(exc, "read")
            return {}

    def save_decisions(self, query: str, rows: Iterable[tuple[str, str, bool]]) -> bool:
        """Store (path, record digest, selectable) for `query`, keeping the newest DECISION_QUERIES queries.
        False (with a warning) when the database is busy or unusable; nothing is lost then (the next run
        evaluates again)."""
        rows = list(rows)
        db = None if self.read_only or not rows else self._connection()
        if db is None:
            return False
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO decisions(query, path, digest, selectable) VALUES (?, ?, ?, ?)",
                    [(query, path, digest, int(sel)) for path, digest, sel in rows],
                )
                db.execute(
                    "DELETE FROM decisions WHERE query NOT IN (SELECT query FROM decisions GROUP BY query "
                    "ORDER BY max(rowid) DESC LIMIT ?)",
                    (DECISION_QUERIES,),
                )
        except sqlite3.Error as exc:
            self._failed(exc, "written")
            return False
        return True
