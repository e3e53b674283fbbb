"""Unit tests of the daemon's building blocks: paths, protocol, run validation, spawn helpers, freshness and
warning replay. No daemon process is started here (tests/python/test_daemon.py does that end to end)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

from pytest_fastcollect import environment
from pytest_fastcollect.daemon import freshness, paths, protocol, spawn
from pytest_fastcollect.daemon.freshness import Snapshot
from pytest_fastcollect.environment import config_candidates
from pytest_fastcollect.daemon.paths import DaemonFiles, DaemonPathError
from pytest_fastcollect.daemon.protocol import HEADER, MAGIC, ProtocolError
from pytest_fastcollect.daemon.replay import ImportLog, Replayer
from pytest_fastcollect.daemon.forkserver import validate_run
from pytest_fastcollect.daemon.spec import Spec

# --------------------------------------------------------------------------------------------------------
# paths: the key
# --------------------------------------------------------------------------------------------------------

DISTS = [("pytest-xdist", "3.8.0"), ("pluggy", "1.5.0")]


def _key(root: str | Path = "/some/root", dists: list[tuple[str, str]] | None = None) -> str:
    return paths.key_of(environment.key_material(root, DISTS if dists is None else dists))


def test_key_is_stable_for_equal_inputs() -> None:
    """Equal inputs give the same key, of 20 lowercase hex digits."""
    a, b = _key(), _key()
    assert a == b
    assert len(a) == 20
    assert all(c in "0123456789abcdef" for c in a)


def test_key_ignores_plugin_order_and_duplicates() -> None:
    """The plugin distributions are a set: order and repetition do not change the key."""
    assert _key(dists=DISTS) == _key(dists=list(reversed(DISTS)) + [DISTS[0]])


def test_key_changes_with_rootdir() -> None:
    """A different rootdir is a different daemon."""
    assert _key("/some/root") != _key("/other/root")


@pytest.mark.parametrize(
    "dists",
    [
        [],
        [("pytest-xdist", "3.8.0")],
        [("pytest-xdist", "3.9.0"), ("pluggy", "1.5.0")],
        DISTS + [("pytest-cov", "5.0")],
    ],
)
def test_key_changes_with_plugin_dists(dists: list[tuple[str, str]]) -> None:
    """Another set of loaded plugin distributions (or another version of one) is a different daemon."""
    assert _key(dists=dists) != _key(dists=DISTS)


@pytest.mark.parametrize("name", ["FASTCOLLECT_UNIT_VAR", "LC_ALL", "KONSOLE", "PYTHONHASHSEED"])
def test_key_changes_with_non_volatile_env(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Every environment variable that is not volatile is part of the key: setting it or changing its value
    changes the key."""
    monkeypatch.delenv(name, raising=False)
    unset = _key()
    monkeypatch.setenv(name, "one")
    one = _key()
    monkeypatch.setenv(name, "two")
    two = _key()
    assert len({unset, one, two}) == 3


@pytest.mark.parametrize(
    "name",
    [
        "COLUMNS",
        "TERM",
        "PWD",
        "PYTEST_VERSION",
        "SSH_AUTH_SOCK",
        "KONSOLE_DBUS_SESSION",
        "ITERM_SESSION_ID",
        "LC_TERMINAL_VERSION",
        # a venv's activate, pyenv's shims, conda's activation, IDE terminals (issue: three daemons per project)
        "PS1",
        "VIRTUAL_ENV_PROMPT",
        "_OLD_VIRTUAL_PATH",
        "PYENV_DIR",
        "PYENV_HOOK_PATH",
        "PYENV_VERSION",
        "CONDA_SHLVL",
        "CONDA_PREFIX_1",
        "CONDA_PROMPT_MODIFIER",
        "VSCODE_GIT_IPC_HANDLE",
        "PYCHARM_HOSTED",
    ],
)
def test_key_ignores_volatile_env(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Volatile variables (terminal and shell state, by name or by prefix) do not change the key, whether set,
    changed or unset."""
    monkeypatch.setenv(name, "one")
    one = _key()
    monkeypatch.setenv(name, "two")
    assert _key() == one
    monkeypatch.delenv(name)
    assert _key() == one


@pytest.mark.parametrize(
    ("name", "volatile"),
    [
        ("COLUMNS", True),
        ("TERM", True),
        ("PYTEST_VERSION", True),
        ("_", True),
        ("KONSOLE_DBUS_SESSION", True),
        ("ITERM_PROFILE", True),
        ("LC_TERMINAL", True),
        ("LC_TERMINAL_VERSION", True),
        ("LC_ALL", False),
        ("KONSOLE", False),
        ("PATH", False),
        ("HOME", False),
        ("PYTHONPATH", False),
        ("columns", False),
    ],
)
def test_is_volatile(name: str, volatile: bool) -> None:
    """is_volatile: exact names from VOLATILE_ENV and the listed prefixes only (case-sensitive)."""
    assert environment.is_volatile(name) is volatile


# --------------------------------------------------------------------------------------------------------
# paths: the socket folder
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An XDG_RUNTIME_DIR owned by us."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    return run


def test_socket_dir_under_xdg_runtime_dir(runtime_dir: Path) -> None:
    """With XDG_RUNTIME_DIR a folder we own, the socket folder is <it>/pytest-fastcollect, created 0700."""
    folder = paths.socket_dir()
    assert folder == runtime_dir / "pytest-fastcollect"
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert paths.socket_dir() == folder  # an existing safe folder is accepted as is


def test_socket_dir_mode_ignores_umask(runtime_dir: Path) -> None:
    """The folder is created 0700 even under a permissive umask (0o000)."""
    old = os.umask(0)
    try:
        folder = paths.socket_dir()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


def test_socket_dir_create_false_does_not_create(runtime_dir: Path) -> None:
    """create=False returns a missing folder without creating it."""
    folder = paths.socket_dir(create=False)
    assert folder == runtime_dir / "pytest-fastcollect"
    assert not folder.exists()


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o707])
def test_socket_dir_refuses_open_folder(runtime_dir: Path, mode: int) -> None:
    """An existing folder open to group or others is refused, and the message names its mode."""
    folder = runtime_dir / "pytest-fastcollect"
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(DaemonPathError, match=f"mode {mode:o}"):
        paths.socket_dir()
    with pytest.raises(DaemonPathError, match=f"mode {mode:o}"):
        paths.socket_dir(create=False)


def test_socket_dir_refuses_symlink(runtime_dir: Path, tmp_path: Path) -> None:
    """A symlink in the folder's place (even to a safe folder of ours) is refused."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    os.chmod(target, 0o700)
    (runtime_dir / "pytest-fastcollect").symlink_to(target)
    with pytest.raises(DaemonPathError, match="not a folder"):
        paths.socket_dir()


def test_socket_dir_refuses_dangling_symlink(runtime_dir: Path, tmp_path: Path) -> None:
    """A dangling symlink in the folder's place is refused, and nothing is created at its target."""
    target = tmp_path / "missing"
    (runtime_dir / "pytest-fastcollect").symlink_to(target)
    with pytest.raises(DaemonPathError):
        paths.socket_dir()
    assert not target.exists()


def test_socket_dir_refuses_regular_file(runtime_dir: Path) -> None:
    """A regular file in the folder's place is refused."""
    (runtime_dir / "pytest-fastcollect").write_text("")
    with pytest.raises(DaemonPathError, match="not a folder"):
        paths.socket_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another uid needs root")
def test_socket_dir_refuses_folder_of_other_user(runtime_dir: Path) -> None:
    """A folder owned by another uid is refused, even with mode 0700."""
    folder = runtime_dir / "pytest-fastcollect"
    folder.mkdir(mode=0o700)
    os.chown(folder, 54321, -1)
    with pytest.raises(DaemonPathError, match="owned by uid 54321"):
        paths.socket_dir()


@pytest.fixture
def fake_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def test_socket_dir_falls_back_when_xdg_unset(monkeypatch: pytest.MonkeyPatch, fake_tempdir: Path) -> None:
    """Without XDG_RUNTIME_DIR the folder is <gettempdir()>/pytest-fastcollect-<uid>, created 0700."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    folder = paths.socket_dir()
    assert folder == fake_tempdir / f"pytest-fastcollect-{os.getuid()}"
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


@pytest.mark.parametrize("what", ["empty", "missing", "file"])
def test_socket_dir_falls_back_when_xdg_unusable(
    monkeypatch: pytest.MonkeyPatch, fake_tempdir: Path, tmp_path: Path, what: str
) -> None:
    """An empty XDG_RUNTIME_DIR, or one that is missing or not a folder, falls back to the temp folder."""
    value = {"empty": "", "missing": str(tmp_path / "nope"), "file": str(tmp_path / "afile")}[what]
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("XDG_RUNTIME_DIR", value)
    assert paths.socket_dir() == fake_tempdir / f"pytest-fastcollect-{os.getuid()}"


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another uid needs root")
def test_socket_dir_falls_back_when_xdg_owned_by_other(
    monkeypatch: pytest.MonkeyPatch, fake_tempdir: Path, tmp_path: Path
) -> None:
    """An XDG_RUNTIME_DIR owned by another uid is not used."""
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 54321, -1)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(other))
    assert paths.socket_dir() == fake_tempdir / f"pytest-fastcollect-{os.getuid()}"


def test_daemon_files_refuses_long_socket_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A socket path longer than 107 bytes is refused (it does not fit in sun_path)."""
    run = tmp_path / ("x" * 100)
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    with pytest.raises(DaemonPathError, match="longer than 107"):
        paths.daemon_files("k" * 20)


@pytest.fixture
def short_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An XDG_RUNTIME_DIR with a short path (pytest's tmp_path may be too long for a socket)."""
    run = Path(tempfile.mkdtemp(prefix="fcu", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    yield run
    shutil.rmtree(run, ignore_errors=True)


def test_daemon_files_boundary(short_runtime_dir: Path) -> None:
    """A socket path of exactly 107 bytes is accepted, 108 refused; the files share the folder and key."""
    folder = short_runtime_dir / "pytest-fastcollect"
    fixed = len(os.fsencode(str(folder))) + len("/") + len(".sock")
    key = "a" * (107 - fixed)
    files = paths.daemon_files(key)
    assert len(os.fsencode(str(files.socket))) == 107
    assert files.folder == folder and files.key == key
    assert files.socket == folder / f"{key}.sock"
    assert {files.lock.parent, files.pid.parent, files.log.parent, files.cache_dir.parent} == {folder}
    with pytest.raises(DaemonPathError):
        paths.daemon_files(key + "a")


# --------------------------------------------------------------------------------------------------------
# protocol
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _deadline() -> float:
    return time.monotonic() + 5.0


@pytest.mark.parametrize(
    "message",
    [
        {"type": "run"},
        {"type": "run", "argv": ["-k", "a and not b"], "env": {"X": "ü€"}, "n": 3, "none": None, "l": [{"a": []}]},
        {"type": "x" * 100_000},  # larger than one read may return
    ],
)
def test_protocol_roundtrip(pair: tuple[socket.socket, socket.socket], message: dict[str, Any]) -> None:
    """send() then recv() returns the same message and no fds."""
    a, b = pair
    a.settimeout(5)
    t = threading.Thread(target=protocol.send, args=(a, message))
    t.start()
    got, fds = protocol.recv(b, deadline=_deadline())
    t.join()
    assert got == message
    assert fds == []


def test_protocol_two_frames_in_a_row(pair: tuple[socket.socket, socket.socket]) -> None:
    """Two frames sent back to back are read one at a time, neither eating into the other."""
    a, b = pair
    protocol.send(a, {"type": "one"})
    protocol.send(a, {"type": "two", "v": 2})
    assert protocol.recv(b, deadline=_deadline())[0] == {"type": "one"}
    assert protocol.recv(b, deadline=_deadline())[0] == {"type": "two", "v": 2}


def test_protocol_frame_in_pieces(pair: tuple[socket.socket, socket.socket]) -> None:
    """A frame arriving in several pieces (header split, body split) is reassembled."""
    a, b = pair
    data = protocol.encode({"type": "pieces", "v": list(range(20))})
    for i in range(0, len(data), 3):
        a.sendall(data[i : i + 3])
    assert protocol.recv(b, deadline=_deadline())[0] == {"type": "pieces", "v": list(range(20))}


def test_frame_reader_reads_a_frame_in_pieces_without_blocking(pair: tuple[socket.socket, socket.socket]) -> None:
    """FrameReader.feed() returns None while the frame is incomplete (never blocks), the message once it is."""
    a, b = pair
    b.setblocking(False)
    reader = protocol.FrameReader(b, _deadline(), max_fds=3)
    assert reader.feed() is None  # nothing sent yet
    data = protocol.encode({"type": "pieces", "v": list(range(50))})
    for i in range(0, len(data), 7):
        assert reader.feed() is None
        a.sendall(data[i : i + 7])
    got = None
    while got is None:
        got = reader.feed()
    assert got == ({"type": "pieces", "v": list(range(50))}, [])


def test_frame_reader_deadline_and_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.setblocking(False)
    reader = protocol.FrameReader(b, time.monotonic() - 1, max_fds=0)
    assert reader.expired(time.monotonic())
    with pytest.raises(ProtocolError, match="deadline"):
        reader.feed()
    a.sendall(HEADER.pack(MAGIC, 10) + b"abc")
    a.shutdown(socket.SHUT_WR)
    reader = protocol.FrameReader(b, _deadline(), max_fds=0)
    with pytest.raises(ProtocolError, match="closed after 11 of 18"):
        while reader.feed() is None:
            pass


def test_frame_reader_passes_and_closes_fds(pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    """fds ride on the first bytes; a frame that turns out malformed closes the fds received so far."""
    a, b = pair
    b.setblocking(False)
    f = open(tmp_path / "x", "w")  # noqa: SIM115
    try:
        socket.send_fds(a, [HEADER.pack(MAGIC, 5)], [f.fileno()])
        reader = protocol.FrameReader(b, _deadline(), max_fds=3)
        while reader.feed() is None and not reader.fds:
            pass
        (received,) = reader.fds
        a.sendall(b"[1,2]")
        with pytest.raises(ProtocolError, match="string 'type'"):
            while reader.feed() is None:
                pass
        with pytest.raises(OSError):
            os.fstat(received)
    finally:
        f.close()


def test_encode_layout() -> None:
    """encode(): MAGIC, the body length (uint32, network order), then compact JSON."""
    data = protocol.encode({"type": "t", "a": 1})
    assert data[:4] == b"PFC\x02" == MAGIC
    body = b'{"type":"t","a":1}'
    assert data[4:8] == len(body).to_bytes(4, "big")
    assert data[8:] == body


def test_protocol_passes_fds(pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    """Three fds sent with a frame arrive as three new fds for the same open files, in order."""
    a, b = pair
    files = [open(tmp_path / f"f{i}", "w+b") for i in range(3)]
    try:
        originals = [f.fileno() for f in files]
        protocol.send(a, {"type": "run"}, originals)
        message, fds = protocol.recv(b, deadline=_deadline(), max_fds=3)
        try:
            assert message == {"type": "run"}
            assert len(fds) == 3
            assert not set(fds) & set(originals)
            for orig, new in zip(originals, fds):
                so, sn = os.fstat(orig), os.fstat(new)
                assert (sn.st_dev, sn.st_ino) == (so.st_dev, so.st_ino)
            # the same open file description: writing through the new fd moves the original's offset
            os.write(fds[1], b"hello")
            assert os.lseek(originals[1], 0, os.SEEK_CUR) == 5
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        for f in files:
            f.close()


def test_recv_eof_before_frame(pair: tuple[socket.socket, socket.socket]) -> None:
    """A peer that closes before sending a byte gives EOFError (not ProtocolError)."""
    a, b = pair
    a.close()
    with pytest.raises(EOFError):
        protocol.recv(b, deadline=_deadline())


def _raw(a: socket.socket, data: bytes, close: bool = True) -> None:
    a.sendall(data)
    if close:
        a.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"XYZ\x01" + (2).to_bytes(4, "big") + b"{}", "not a pytest-fastcollect frame"),
        (b"HTTP/1.1 200 OK\r\n", "not a pytest-fastcollect frame"),
        (b"PFC\x03" + (13).to_bytes(4, "big") + b'{"type":"x"}', "protocol version 3"),
        (b"PFC\x00" + (13).to_bytes(4, "big") + b'{"type":"x"}', "protocol version 0"),
        (HEADER.pack(MAGIC, protocol.MAX_FRAME + 1), "exceeds the limit"),
        (HEADER.pack(MAGIC, 0xFFFFFFFF), "exceeds the limit"),
        (HEADER.pack(MAGIC, 10) + b"abc", "closed after 3 of 10"),
        (HEADER.pack(MAGIC, 10), "closed after 0 of 10"),
        (b"PF", "closed after 2 of 8"),
        (HEADER.pack(MAGIC, 9) + b"{not json", "not JSON"),
        (HEADER.pack(MAGIC, 2) + b"\xff\xfe", "not JSON"),
        (HEADER.pack(MAGIC, 0), "not JSON"),
        (HEADER.pack(MAGIC, 3) + b"[1]", "string 'type'"),
        (HEADER.pack(MAGIC, 6) + b'"type"', "string 'type'"),
        (HEADER.pack(MAGIC, 7) + b'{"a":1}', "string 'type'"),
        (HEADER.pack(MAGIC, 10) + b'{"type":1}', "string 'type'"),
        (HEADER.pack(MAGIC, 13) + b'{"type":null}', "string 'type'"),
        # D1: a body that makes the JSON decoder raise something else than JSONDecodeError
        (HEADER.pack(MAGIC, 2420) + b'{"type":"ping","x":' + b"[" * 1200 + b"]" * 1200 + b"}", "not JSON"),
        (HEADER.pack(MAGIC, 5015) + b'{"type":"p","x":' + b"9" * 4998 + b"}", "not JSON"),
    ],
)
def test_recv_rejects_malformed(pair: tuple[socket.socket, socket.socket], data: bytes, match: str) -> None:
    """Wrong magic, another protocol version, an oversized length, truncated data, a body that is not JSON or
    not an object with a string "type": ProtocolError."""
    a, b = pair
    _raw(a, data)
    with pytest.raises(ProtocolError, match=match):
        protocol.recv(b, deadline=_deadline())


def test_recv_max_frame_boundary(pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of exactly MAX_FRAME bytes is accepted; one more byte is refused (on both sides)."""
    a, b = pair
    body = b'{"type":"abcdefgh"}'
    monkeypatch.setattr(protocol, "MAX_FRAME", len(body))
    _raw(a, HEADER.pack(MAGIC, len(body)) + body, close=False)
    assert protocol.recv(b, deadline=_deadline())[0] == {"type": "abcdefgh"}
    _raw(a, HEADER.pack(MAGIC, len(body) + 1) + body + b" ")
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        protocol.recv(b, deadline=_deadline())


def test_encode_rejects_oversized(monkeypatch: pytest.MonkeyPatch) -> None:
    """encode() refuses a message whose body is larger than MAX_FRAME; one of exactly MAX_FRAME is fine."""
    monkeypatch.setattr(protocol, "MAX_FRAME", 20)
    assert len(b'{"type":"aaaaaaaaa"}') == 20
    assert len(protocol.encode({"type": "a" * 9})) == 8 + 20
    with pytest.raises(ProtocolError, match="frame of 21 bytes exceeds the limit of 20"):
        protocol.encode({"type": "a" * 10})


def test_send_rejects_oversized_without_sending(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """send() of an oversized message raises ProtocolError before writing anything."""
    a, b = pair
    monkeypatch.setattr(protocol, "MAX_FRAME", 20)
    with pytest.raises(ProtocolError):
        protocol.send(a, {"type": "a" * 100})
    a.close()
    with pytest.raises(EOFError):
        protocol.recv(b, deadline=_deadline())


@pytest.mark.parametrize(("sent", "max_fds"), [(1, 0), (2, 1), (3, 2), (4, 3)])
def test_recv_too_many_fds_closes_them(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path, sent: int, max_fds: int
) -> None:
    """More fds than max_fds: ProtocolError, and none of the received fds stays open."""
    a, b = pair
    files = [open(tmp_path / f"f{i}", "wb") for i in range(sent)]
    try:
        before = _open_fds()
        protocol.send(a, {"type": "run"}, [f.fileno() for f in files])
        with pytest.raises(ProtocolError, match="file descriptors"):
            protocol.recv(b, deadline=_deadline(), max_fds=max_fds)
        assert _open_fds() == before
    finally:
        for f in files:
            f.close()


def test_recv_closes_fds_on_bad_body(pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    """fds that came with a frame whose body is malformed are closed when ProtocolError is raised."""
    a, b = pair
    files = [open(tmp_path / f"f{i}", "wb") for i in range(3)]
    try:
        before = _open_fds()
        data = HEADER.pack(MAGIC, 9) + b"{not json"
        sent = socket.send_fds(a, [data], [f.fileno() for f in files])
        assert sent == len(data)
        with pytest.raises(ProtocolError, match="not JSON"):
            protocol.recv(b, deadline=_deadline(), max_fds=3)
        assert _open_fds() == before
    finally:
        for f in files:
            f.close()


@pytest.mark.parametrize("prefix", [b"", b"PFC", HEADER.pack(MAGIC, 20) + b'{"type"'])
def test_recv_deadline(pair: tuple[socket.socket, socket.socket], prefix: bytes) -> None:
    """A peer that stops sending (before a frame, mid-header or mid-body) gives ProtocolError at the deadline."""
    a, b = pair
    if prefix:
        a.sendall(prefix)
    with pytest.raises(ProtocolError, match="deadline"):
        protocol.recv(b, deadline=time.monotonic() + 0.2)


def test_recv_deadline_already_passed(pair: tuple[socket.socket, socket.socket]) -> None:
    """A deadline already in the past raises ProtocolError even when the data is there."""
    a, b = pair
    protocol.send(a, {"type": "x"})
    with pytest.raises(ProtocolError, match="deadline"):
        protocol.recv(b, deadline=time.monotonic() - 1)


# --------------------------------------------------------------------------------------------------------
# server: run requests and the spec
# --------------------------------------------------------------------------------------------------------


def _valid_process() -> dict[str, Any]:
    stream = {"encoding": "utf-8", "errors": "strict", "line_buffering": False, "write_through": True,
              "buffered": True, "name": "<stdout>", "mode": "w"}
    return {
        "fds": [0, 1, 2],
        "stdio": [None, stream, dict(stream, name="<stderr>")],
        "signals": {"2": "int", "13": "ign", "15": "dfl"},
        "mask": [],
        "rlimits": {"RLIMIT_NOFILE": [1024, 4096]},
        "nice": 0,
        "affinity": [0, 1],
        "umask": 0o022,
        "orig_argv": ["python", "-m", "pytest", "-q"],
        "main": {"spec": "pytest.__main__", "file": "/x/pytest/__main__.py"},
    }


def _valid_run() -> dict[str, Any]:
    return {
        "type": "run",
        "key": "k" * 20,
        "argv": ["-q"],
        "cwd": "/work",
        "env": {"PATH": "/usr/bin", "EMPTY": ""},
        "sys_path": ["", "/work"],
        "process": _valid_process(),
    }


@pytest.mark.parametrize("umask", [0, 0o022, 0o777])
def test_validate_run_accepts_valid(umask: int) -> None:
    """A well-formed run request with its 3 fds is accepted (None)."""
    request = _valid_run()
    request["process"]["umask"] = umask
    assert validate_run(request, 3) is None


def test_validate_run_accepts_empty_collections() -> None:
    """An empty env, an empty sys_path, a closed stdin and no affinity are still well-formed."""
    request = _valid_run()
    request["env"] = {}
    request["sys_path"] = []
    request["process"]["fds"] = [1, 2]
    request["process"]["affinity"] = None
    assert validate_run(request, 2) is None


_MISSING = object()


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("key", _MISSING, "key"),
        ("key", 1, "key"),
        ("key", None, "key"),
        ("argv", _MISSING, "argv"),
        ("argv", [], "argv"),
        ("argv", "-q", "argv"),
        ("argv", ["-q", 1], "argv"),
        ("argv", [None], "argv"),
        ("cwd", _MISSING, "cwd"),
        ("cwd", "relative/dir", "cwd"),
        ("cwd", "", "cwd"),
        ("cwd", ["/work"], "cwd"),
        ("env", _MISSING, "env"),
        ("env", [["A", "B"]], "env"),
        ("env", {"A": 1}, "env"),
        ("env", {"A": None}, "env"),
        ("sys_path", _MISSING, "sys_path"),
        ("sys_path", "/work", "sys_path"),
        ("sys_path", ["/work", 2], "sys_path"),
        ("fresh", 1, "fresh"),
        ("process", _MISSING, "process"),
        ("process", [], "process"),
        ("process.umask", _MISSING, "umask"),
        ("process.umask", -1, "umask"),
        ("process.umask", 0o1000, "umask"),
        ("process.umask", "022", "umask"),
        ("process.umask", 18.0, "umask"),
        ("process.stdio", _MISSING, "stdio"),
        ("process.stdio", [None, None], "stdio"),
        ("process.stdio", [None, None, None, None], "stdio"),
        ("process.stdio", [None, "tty", None], "stdio"),
        ("process.stdio", {"0": None}, "stdio"),
        ("process.stdio", [{"mode": "r"}, None, None], "stdio"),
        ("process.fds", [0, 0, 1], "fds"),
        ("process.fds", [0, -1, 2], "fds"),
        ("process.fds", "0,1,2", "fds"),
        ("process.signals", {"SIGINT": "ign"}, "signals"),
        ("process.signals", {"2": 1}, "signals"),
        ("process.mask", ["SIGINT"], "mask"),
        ("process.rlimits", {"RLIMIT_NOFILE": [1]}, "rlimits"),
        ("process.nice", "0", "nice"),
        ("process.affinity", "0-1", "affinity"),
        ("process.orig_argv", "python", "orig_argv"),
        ("process.main", {"spec": 1}, "main"),
    ],
)
def test_validate_run_rejects_bad_field(field: str, value: Any, word: str) -> None:
    """Each malformed field is named in the reason."""
    request = _valid_run()
    target, name = (request["process"], field.split(".", 1)[1]) if field.startswith("process.") else (request, field)
    if value is _MISSING:
        del target[name]
    else:
        target[name] = value
    problem = validate_run(request, 3)
    assert isinstance(problem, str)
    assert word in problem


def test_validate_run_rejects_a_stream_on_a_closed_fd() -> None:
    request = _valid_run()
    request["process"]["fds"] = [0, 2]
    assert "closed fd" in (validate_run(request, 2) or "")


@pytest.mark.parametrize("nfds", [0, 1, 2, 4])
def test_validate_run_rejects_fd_count(nfds: int) -> None:
    """A request whose fds are not the ones it describes (3 here) is rejected, naming the count."""
    problem = validate_run(_valid_run(), nfds)
    assert problem is not None
    assert "file descriptors" in problem and str(nfds) in problem


def test_spec_json_roundtrip() -> None:
    """Spec.from_json(spec.to_json()) gives an equal Spec, and the JSON is a plain object."""
    spec = Spec(
        key="k" * 20,
        folder="/run/user/0/pytest-fastcollect",
        rootdir="/work/proj",
        cwd="/work/proj/sub",
        warm_args=["tests/test_x.py", "--import-mode=importlib", "-o", "a=b c"],
        idle_timeout=1.5,
        lock_fd=7,
        reason="source changed",
        dirty_retries=2,
    )
    text = spec.to_json()
    assert json.loads(text)["warm_args"] == spec.warm_args
    again = Spec.from_json(text)
    assert again == spec
    assert isinstance(again.warm_args, list)


def test_spec_json_defaults() -> None:
    """reason and dirty_retries have defaults: a JSON without them still loads."""
    data = {"key": "k", "folder": "/f", "rootdir": "/r", "cwd": "/r", "warm_args": [], "idle_timeout": 0, "lock_fd": -1}
    spec = Spec.from_json(json.dumps(data))
    assert spec.reason == "started" and spec.dirty_retries == 0


# --------------------------------------------------------------------------------------------------------
# spawn: warm-up arguments
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def parser(pytester: pytest.Pytester) -> Any:
    """pytest's real option parser (with the installed plugins' options)."""
    (pytester.path / "c").mkdir()  # --confcutdir's value must be an existing folder
    (pytester.path / "r").mkdir()
    config = pytester.parseconfig()
    return config._parser


MODES = types.SimpleNamespace(assertmode="rewrite", importmode="prepend")
MODE_ARGS = ["--assert=rewrite", "--import-mode=prepend"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tests/test_x.py::TestA::test_b"], ["tests/test_x.py"]),
        (["tests/test_x.py::test_c[a::b]"], ["tests/test_x.py"]),
        (["tests", "tests/test_y.py"], ["tests", "tests/test_y.py"]),
        (["-p", "foo"], ["-p", "foo"]),
        (["-p", "foo", "-p", "no:bar"], ["-p", "foo", "-p", "no:bar"]),
        (["-c", "ini"], ["-c", "ini"]),
        (["--rootdir=r"], ["--rootdir", "r"]),
        (["--confcutdir=c"], ["--confcutdir", "c"]),
        (["--noconftest"], ["--noconftest"]),
        (["--pyargs", "pkg.tests"], ["--pyargs", "pkg.tests"]),
        (["-o", "a=b"], ["-o", "a=b"]),
        (["--ignore=x"], ["--ignore", "x"]),
        (["--ignore-glob=y"], ["--ignore-glob", "y"]),
    ],
)
def test_warm_args_keeps(parser: Any, args: list[str], expected: list[str]) -> None:
    """Positional paths (without their `::` parts) and import-relevant options are kept; the effective
    modes come after the options and before the paths."""
    out = spawn.warm_args(parser, args, MODES)
    options = [a for a in expected if not (a.startswith("tests") or a == "pkg.tests")]
    positionals = [a for a in expected if a not in options]
    assert out == options + MODE_ARGS + positionals


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "expr"],
        ["-x"],
        ["-m", "m"],
        ["--lf"],
        ["-v"],
        ["-vv", "-q"],
        ["--tb=short"],
        ["-k", "expr", "-x", "-m", "slow", "--lf", "-v"],
    ],
)
def test_warm_args_drops(parser: Any, args: list[str]) -> None:
    """Options that do not change what collection imports are dropped, their values with them."""
    assert spawn.warm_args(parser, args, MODES) == MODE_ARGS


def test_warm_args_combined(parser: Any) -> None:
    """A full command line: kept options in a fixed order, modes, then the paths; the rest dropped."""
    args = [
        "-x",
        "tests/test_x.py::TestA::test_b",
        "-k",
        "expr",
        "--ignore=x",
        "-p",
        "foo",
        "--noconftest",
        "-m",
        "m",
        "-o",
        "a=b",
        "--lf",
        "tests/test_y.py",
        "-v",
    ]
    out = spawn.warm_args(parser, args, MODES)
    options = ["-p", "foo", "-o", "a=b", "--ignore", "x", "--noconftest"]
    assert out == [*options, *MODE_ARGS, "tests/test_x.py", "tests/test_y.py"]


@pytest.mark.parametrize(
    ("effective", "expected"),
    [
        (
            types.SimpleNamespace(assertmode="plain", importmode="importlib"),
            ["--assert=plain", "--import-mode=importlib"],
        ),
        (types.SimpleNamespace(assertmode=None, importmode="append"), ["--import-mode=append"]),
        (types.SimpleNamespace(), []),
    ],
)
def test_warm_args_effective_modes(parser: Any, effective: Any, expected: list[str]) -> None:
    """The effective assertion and import modes are appended as --assert=/--import-mode= when set."""
    assert spawn.warm_args(parser, [], effective) == expected


def test_warm_args_with_known_args_namespace(pytester: pytest.Pytester) -> None:
    """With config.known_args_namespace as `effective`, the run's own modes are carried over."""
    config = pytester.parseconfig("--import-mode=importlib", "--assert=plain")
    args = ["--import-mode=importlib", "--assert=plain", "-x"]
    out = spawn.warm_args(config._parser, args, config.known_args_namespace)
    assert out == ["--assert=plain", "--import-mode=importlib"]


# --------------------------------------------------------------------------------------------------------
# spawn: the lock
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> DaemonFiles:
    return DaemonFiles(tmp_path, "k" * 20)


def test_flock_conflicts_within_one_process(files: DaemonFiles) -> None:
    """The assumption the lock tests rest on: two open file descriptions of one file conflict under flock,
    even in one process."""
    fd1 = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    fd2 = os.open(files.lock, os.O_RDWR)
    try:
        fcntl.flock(fd1, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd1)
        os.close(fd2)


def test_try_lock_and_daemon_running(files: DaemonFiles) -> None:
    """try_lock takes the lock once; while it is held daemon_running() is True and another try_lock gets
    None; once released, daemon_running() is False and the lock can be taken again."""
    assert not files.lock.exists()
    assert spawn.daemon_running(files) is False
    fd = spawn.try_lock(files)
    assert fd is not None
    try:
        assert stat.S_IMODE(os.stat(files.lock).st_mode) & 0o077 == 0
        assert not os.get_inheritable(fd)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        before = _open_fds()
        assert spawn.daemon_running(files) is True
        assert spawn.try_lock(files) is None
        assert _open_fds() == before  # the failed attempts closed their fds
    finally:
        os.close(fd)
    assert spawn.daemon_running(files) is False
    again = spawn.try_lock(files)
    assert again is not None
    os.close(again)


def test_daemon_running_does_not_hold_the_lock(files: DaemonFiles) -> None:
    """daemon_running() when no daemon runs leaves the lock free (it releases what it took)."""
    assert spawn.daemon_running(files) is False
    fd = spawn.try_lock(files)
    assert fd is not None
    os.close(fd)


def test_try_lock_missing_folder_raises(tmp_path: Path) -> None:
    """A lock file that cannot be opened raises OSError."""
    with pytest.raises(OSError):
        spawn.try_lock(DaemonFiles(tmp_path / "missing", "k" * 20))


def _make_socket_file(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
    finally:
        s.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_pid_of_trusts_only_a_holder_of_the_lock(files: DaemonFiles) -> None:
    """D4: a pid file naming a process that does not hold the lock is not believed; the lock's holder is."""
    from pytest_fastcollect.daemon import control
    from pytest_fastcollect.daemon.client import Target

    tgt = Target("k", {}, files, "/root")
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        files.pid.write_text(f"{bystander.pid}\n")
        assert control._pid_of(tgt) is None  # nobody holds the lock
        fd = spawn.try_lock(files)
        assert fd is not None
        try:
            assert control._pid_of(tgt) == os.getpid()
            files.pid.write_text(f"{os.getpid()}\n")
            assert control._pid_of(tgt) == os.getpid()
        finally:
            os.close(fd)
    finally:
        bystander.kill()
        bystander.wait()


def test_remove_stale_socket_without_lock(files: DaemonFiles) -> None:
    """With no daemon holding the lock, a leftover socket is removed (True); none there: False."""
    _make_socket_file(files.socket)
    assert spawn.remove_stale_socket(files) is True
    assert not os.path.lexists(files.socket)
    assert spawn.remove_stale_socket(files) is False
    assert spawn.daemon_running(files) is False  # it released the lock it took


def test_remove_stale_socket_while_locked(files: DaemonFiles) -> None:
    """While a daemon holds the lock its socket is left alone (False)."""
    _make_socket_file(files.socket)
    fd = spawn.try_lock(files)
    assert fd is not None
    try:
        assert spawn.remove_stale_socket(files) is False
        assert stat.S_ISSOCK(os.lstat(files.socket).st_mode)
    finally:
        os.close(fd)
    assert spawn.remove_stale_socket(files) is True


# --------------------------------------------------------------------------------------------------------
# freshness
# --------------------------------------------------------------------------------------------------------


class Project:
    """A small project on disk, fake module objects for it, and a Snapshot factory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        files = {
            "pkg/__init__.py": "",
            "pkg/mod.py": "X = 1\n",
            "pkg/sub.py": "import pkg.mod\n",
            "pkg/other.py": "Y = 2\n",
            "early.py": "E = 1\n",
            "support.py": "S = 1\n",
            "tests/test_a.py": "import pkg.sub\n\ndef test_a():\n    pass\n",
            "tests/test_b.py": "import support\n\ndef test_b():\n    pass\n",
            "tests/conftest.py": "import support\n",
            "pytest.ini": "[pytest]\n",
        }
        for rel, text in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        names = {
            "pkg": "pkg/__init__.py",
            "pkg.mod": "pkg/mod.py",
            "pkg.sub": "pkg/sub.py",
            "pkg.other": "pkg/other.py",
            "early": "early.py",
            "support": "support.py",
            "test_a": "tests/test_a.py",
            "test_b": "tests/test_b.py",
            "conftest": "tests/conftest.py",
        }
        self.modules: dict[str, types.ModuleType] = {}
        for name, rel in names.items():
            mod = types.ModuleType(name)
            mod.__file__ = str(root / rel)
            if rel.endswith("__init__.py"):
                mod.__path__ = [str(root / "pkg")]  # type: ignore[attr-defined]
            self.modules[name] = mod
        # a module object without a file, and one from outside rootdir: never project modules
        self.modules["builtin_like"] = types.ModuleType("builtin_like")
        self.modules["os"] = os

    def path(self, rel: str) -> str:
        return os.path.realpath(self.root / rel)

    def snapshot(
        self, configure: set[str] | None = None, warm_started_ns: int | None = None, test_files: tuple[str, ...] = ()
    ) -> Snapshot:
        root = str(self.root)
        return Snapshot(
            root,
            self.modules,
            configure_modules={"early"} if configure is None else configure,
            config_files=config_candidates(root, str(self.root / "tests"), str(self.root / "pytest.ini")),
            warm_started_ns=time.time_ns() + 5_000_000_000 if warm_started_ns is None else warm_started_ns,
            import_roots=[root, str(self.root / "tests")],
            test_files=test_files,
        )

    def outside_module(self, name: str, path: Path, text: str) -> str:
        """A module loaded from a file outside rootdir (an installed or sibling package)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        mod = types.ModuleType(name)
        mod.__file__ = str(path)
        self.modules[name] = mod
        return os.path.realpath(path)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setattr(freshness, "site_folders", lambda rootdir: {"/site": 1})
    return Project(tmp_path.resolve() / "proj")


def _rewrite(path: Path, text: str) -> None:
    """Write new bytes and make sure the stat differs (size changes; mtime moved too)."""
    path.write_text(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))


def test_snapshot_records_entries(project: Project) -> None:
    """Modules under rootdir are recorded with their kind and names; modules without a file or outside
    rootdir are not; config candidates are recorded, missing ones as not existing."""
    snap = project.snapshot()
    e = snap.entries
    assert e[project.path("pkg/mod.py")].kind == "module"
    assert e[project.path("pkg/mod.py")].modules == ["pkg.mod"]
    assert e[project.path("tests/conftest.py")].kind == "conftest"
    assert e[project.path("early.py")].kind == "configure"
    assert e[project.path("pytest.ini")].kind == "config" and e[project.path("pytest.ini")].exists
    assert e[project.path("tests/pytest.ini")].kind == "config" and not e[project.path("tests/pytest.ini")].exists
    assert e[project.path("tox.ini")].kind == "config" and not e[project.path("tox.ini")].exists
    recorded = {n for entry in e.values() for n in entry.modules}
    assert "os" not in recorded and "builtin_like" not in recorded
    assert snap.module_count == 9
    assert snap.dirty == set()


def test_snapshot_sibling_module_is_evicted_and_an_extension_module_restarts(project: Project, tmp_path: Path) -> None:
    """One rule with the records (environment.Classifier): a module from outside rootdir and outside the
    interpreter's folders (an editable sibling project) is a project module: a change evicts it. A module
    the template cannot evict (an extension module; any third-party file in a site folder) is "installed":
    editing it in place refuses the run and restarts the daemon."""
    sibling = project.outside_module("sibling", tmp_path / "elsewhere" / "sibling.py", "V = 1\n")
    ext = project.outside_module("fastext", tmp_path / "elsewhere" / "fastext.so", "ELF")
    snap = project.snapshot()
    assert snap.entries[sibling].kind == "module"
    assert snap.entries[ext].kind == "installed"
    assert snap.project_file_count == len(snap.entries) - 1
    assert snap.plan(project.modules).refuse is None
    _rewrite(Path(sibling), "V = 22\n")
    plan = snap.plan(project.modules)
    assert plan.refuse is None and "sibling" in plan.evict
    _rewrite(Path(ext), "ELF2")
    plan = snap.plan(project.modules)
    assert plan.refuse == f"installed module {ext} changed" and plan.restart


def test_snapshot_test_file_outside_rootdir_is_evicted_when_changed(project: Project, tmp_path: Path) -> None:
    """A test file the warm-up imported from outside rootdir (`--pyargs`: inside site-packages) is watched like
    a project module: a change evicts it, the run is served."""
    test_file = project.outside_module("pkgtests.test_x", tmp_path / "site" / "pkgtests" / "test_x.py", "def test_x():\n    pass\n")
    snap = project.snapshot(test_files=(test_file,))
    assert snap.entries[test_file].kind == "module"
    _rewrite(Path(test_file), "def test_x():\n    assert 0\n")
    plan = snap.plan(project.modules)
    assert plan.refuse is None and plan.changed == [test_file] and "pkgtests.test_x" in plan.evict


def test_snapshot_no_change(project: Project) -> None:
    """Nothing changed: an empty plan (no eviction, no refusal)."""
    snap = project.snapshot()
    plan = snap.plan(project.modules)
    assert plan.changed == [] and plan.evict == [] and plan.refuse is None
    assert not plan.rebuild and not plan.restart


def test_snapshot_touch_same_bytes_is_no_change(project: Project) -> None:
    """A touch (new mtime, same bytes) is not a change; nor is a rewrite with the same bytes (real times: the
    files were read 0.1 s after they were written, and touched 0.2 s later)."""
    snap = project.snapshot(warm_started_ns=time.time_ns() + 100_000_000)
    time.sleep(0.2)
    mod = project.root / "pkg/mod.py"
    os.utime(mod)
    (project.root / "tests/conftest.py").write_text("import support\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [] and plan.refuse is None and plan.evict == []
    assert snap.changed_paths() == []  # still none the second time (the stat was refreshed)


def test_snapshot_changed_module_evicts_reverse_closure(project: Project) -> None:
    """A changed module evicts itself and every module importing it transitively, nothing else."""
    snap = project.snapshot()
    _rewrite(project.root / "pkg/mod.py", "X = 22\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("pkg/mod.py")]
    assert plan.refuse is None and not plan.rebuild and not plan.restart
    assert plan.evict == ["pkg.mod", "pkg.sub", "test_a"]


def test_snapshot_change_is_sticky(project: Project) -> None:
    """A change stays a change on later requests (every run child starts from the same template)."""
    snap = project.snapshot()
    _rewrite(project.root / "pkg/mod.py", "X = 22\n")
    first = snap.plan(project.modules)
    second = snap.plan(project.modules)
    assert first.changed == second.changed == [project.path("pkg/mod.py")]
    assert second.evict == first.evict


def test_snapshot_changed_leaf_test_module(project: Project) -> None:
    """A changed test module that nothing imports evicts only itself."""
    snap = project.snapshot()
    _rewrite(project.root / "tests/test_a.py", "import pkg.sub\n\ndef test_a2():\n    pass\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("tests/test_a.py")]
    assert plan.evict == ["test_a"]


def test_snapshot_deleted_module_is_changed(project: Project) -> None:
    """A deleted module is a change."""
    snap = project.snapshot()
    os.unlink(project.root / "pkg/mod.py")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("pkg/mod.py")]
    assert plan.refuse is None
    assert plan.evict == ["pkg.mod", "pkg.sub", "test_a"]


def test_snapshot_changed_package_evicts_submodules(project: Project) -> None:
    """A changed package evicts every submodule of it, even those that do not import anything from it."""
    snap = project.snapshot()
    _rewrite(project.root / "pkg/__init__.py", "P = 1\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("pkg/__init__.py")]
    assert plan.refuse is None
    pkg_names = {n for n in project.modules if n == "pkg" or n.startswith("pkg.")}
    assert pkg_names <= set(plan.evict)
    assert "pkg.other" in plan.evict
    assert set(plan.evict) == pkg_names | {"test_a"}


def test_snapshot_changed_conftest_refuses(project: Project) -> None:
    """A changed conftest refuses the run and asks for a rebuild."""
    snap = project.snapshot()
    _rewrite(project.root / "tests/conftest.py", "import support\nX = 1\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("tests/conftest.py")]
    assert plan.refuse is not None and "conftest" in plan.refuse and "changed" in plan.refuse
    assert plan.rebuild and not plan.restart
    assert plan.evict == []


def test_snapshot_conftest_importing_changed_module_refuses(project: Project) -> None:
    """A module a conftest imports changed: the conftest lies in the reverse closure, so the run is refused."""
    snap = project.snapshot()
    _rewrite(project.root / "support.py", "S = 2\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("support.py")]
    assert plan.refuse is not None
    assert "conftest" in plan.refuse and "imports a changed module" in plan.refuse
    assert plan.rebuild


@pytest.mark.parametrize("ini", ["tests/pytest.ini", "tests/tox.ini", "pyproject.toml", "setup.cfg"])
def test_snapshot_new_config_file_refuses(project: Project, ini: str) -> None:
    """A config file created where pytest would look for one refuses the run."""
    snap = project.snapshot()
    (project.root / ini).write_text("[pytest]\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path(ini)]
    assert plan.refuse is not None and "config file" in plan.refuse
    assert plan.rebuild


def test_snapshot_changed_ini_refuses(project: Project) -> None:
    """The ini file in use changed: refused, rebuild."""
    snap = project.snapshot()
    _rewrite(project.root / "pytest.ini", "[pytest]\naddopts = -x\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("pytest.ini")]
    assert plan.refuse is not None and "config file" in plan.refuse and "pytest.ini" in plan.refuse
    assert plan.rebuild


def test_snapshot_deleted_ini_refuses(project: Project) -> None:
    """The ini file in use deleted: refused."""
    snap = project.snapshot()
    os.unlink(project.root / "pytest.ini")
    plan = snap.plan(project.modules)
    assert plan.refuse is not None and "config file" in plan.refuse


def test_snapshot_changed_configure_module_refuses(project: Project) -> None:
    """A module imported at configure time changed: refused, rebuild."""
    snap = project.snapshot()
    _rewrite(project.root / "early.py", "E = 2\n")
    plan = snap.plan(project.modules)
    assert plan.changed == [project.path("early.py")]
    assert plan.refuse is not None and "configure time" in plan.refuse
    assert plan.rebuild


def test_snapshot_importer_of_change_at_configure_time_refuses(project: Project) -> None:
    """A configure-time module that imports a changed module: refused ("imports a changed module")."""
    snap = project.snapshot(configure={"pkg.sub"})
    _rewrite(project.root / "pkg/mod.py", "X = 3\n")
    plan = snap.plan(project.modules)
    assert plan.refuse is not None
    assert "configure time" in plan.refuse and "imports a changed module" in plan.refuse


def test_snapshot_racy_files_are_dirty(project: Project) -> None:
    """Files modified less than 1 s before the warm-up started count as changed from the start."""
    snap = project.snapshot(warm_started_ns=time.time_ns())
    mod = project.path("pkg/mod.py")
    assert mod in snap.dirty
    assert mod in snap.changed_paths()
    # and files older than that are not
    old = time.time_ns() - 60_000_000_000
    for dirpath, _, names in os.walk(project.root):
        for n in names:
            os.utime(os.path.join(dirpath, n), ns=(old, old))
    # ctime cannot be set back: a warm-up start far enough after now makes every file old enough
    assert project.snapshot().dirty == set()


def test_snapshot_site_change_restarts(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site folder's mtime moved (or one appeared): the run is refused and the daemon restarts."""
    snap = project.snapshot()
    assert snap.site_changed() == []
    monkeypatch.setattr(freshness, "site_folders", lambda rootdir: {"/site": 2})
    assert snap.site_changed() == ["/site"]
    plan = snap.plan(project.modules)
    assert plan.restart is True
    assert plan.refuse is not None and "installed packages" in plan.refuse and "/site" in plan.refuse
    monkeypatch.setattr(freshness, "site_folders", lambda rootdir: {"/site": 1, "/new-site": 5})
    assert snap.site_changed() == ["/new-site"]
    assert snap.plan(project.modules).restart is True


def test_config_candidates(tmp_path: Path) -> None:
    """config_candidates: the ini in use first, then every config name in the invocation folder and each
    parent up to rootdir, and nothing above rootdir."""
    root = tmp_path.resolve()
    (root / "a/b").mkdir(parents=True)
    out = config_candidates(str(root), str(root / "a/b"), str(root / "pytest.ini"))
    assert out[0] == str(root / "pytest.ini")
    assert len(out) == len(set(out)) == 15
    for folder in (root, root / "a", root / "a/b"):
        for name in environment.CONFIG_NAMES:
            assert str(folder / name) in out
    outside = config_candidates(str(root / "a"), "/", None)
    assert outside == [str(root / "a" / n) for n in environment.CONFIG_NAMES]


# --------------------------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------------------------


def _log() -> ImportLog:
    log = ImportLog()
    log.events = {
        "test_x": [("import", "helper"), ("warn", UserWarning("x"), UserWarning, "/p/test_x.py", 3)],
        "test_y": [("import", "helper"), ("warn", UserWarning("y"), UserWarning, "/p/test_y.py", 4)],
        "helper": [
            ("warn", DeprecationWarning("d"), DeprecationWarning, "/p/helper.py", 1),
            ("warn", UserWarning("r"), UserWarning, "/p/helper.py", 5),
            ("warn", UserWarning("r"), UserWarning, "/p/helper.py", 5),
        ],
    }
    return log


@pytest.fixture
def warm(monkeypatch: pytest.MonkeyPatch) -> dict[str, types.ModuleType]:
    """Warm module objects, also in sys.modules (restored afterwards)."""
    objs = {name: types.ModuleType(name) for name in ("test_x", "test_y", "helper")}
    for name, obj in objs.items():
        monkeypatch.setitem(sys.modules, name, obj)
    return objs


def _replayer(log: ImportLog, warm: dict[str, types.ModuleType], already: set[str] | None = None) -> Replayer:
    return Replayer(log, {"/p/test_x.py": "test_x", "/p/test_y.py": "test_y"}, already or set(), warm)


def _seen(records: list[warnings.WarningMessage]) -> list[tuple[type[Warning], str, str, int]]:
    return [(r.category, str(r.message), r.filename, r.lineno) for r in records]


def test_replay_order_and_default_registry(warm: dict[str, types.ModuleType]) -> None:
    """Collecting a warm test module re-issues the imported helper's warnings first, then its own, in order;
    under "default" a repeated location is shown once."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("default")
        replayer.on_collect("/p/test_x.py")
    assert _seen(records) == [
        (DeprecationWarning, "d", "/p/helper.py", 1),
        (UserWarning, "r", "/p/helper.py", 5),
        (UserWarning, "x", "/p/test_x.py", 3),
    ]
    assert replayer.replayed == 4


def test_replay_always_shows_repeats(warm: dict[str, types.ModuleType]) -> None:
    """Under "always" every recorded warning is re-issued, repeats included."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        replayer.on_collect("/p/test_x.py")
    assert [str(r.message) for r in records] == ["d", "r", "r", "x"]


def test_replay_shared_module_once(warm: dict[str, types.ModuleType]) -> None:
    """A module imported by two test modules is replayed with the first only; collecting the same test
    module twice replays nothing the second time."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        replayer.on_collect("/p/test_x.py")
        del records[:]
        replayer.on_collect("/p/test_y.py")
        assert _seen(records) == [(UserWarning, "y", "/p/test_y.py", 4)]
        del records[:]
        replayer.on_collect("/p/test_x.py")
        replayer.on_collect("/p/test_y.py")
        assert records == []


def test_replay_skips_already_imported(warm: dict[str, types.ModuleType]) -> None:
    """Modules a plain run imported before collection (`already`) are not replayed."""
    replayer = _replayer(_log(), warm, already={"helper"})
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        replayer.on_collect("/p/test_x.py")
    assert [str(r.message) for r in records] == ["x"]


@pytest.mark.parametrize("how", ["replaced", "evicted", "not_warm", "unknown_path"])
def test_replay_nothing_for_non_warm_module(
    warm: dict[str, types.ModuleType], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A test module that is not the warm object any more (replaced or evicted), was never warm, or a path
    that is no warm test module: nothing is replayed (pytest imports it for real)."""
    objs = dict(warm)
    path = "/p/test_x.py"
    if how == "replaced":
        monkeypatch.setitem(sys.modules, "test_x", types.ModuleType("test_x"))
    elif how == "evicted":
        monkeypatch.delitem(sys.modules, "test_x")
    elif how == "not_warm":
        del objs["test_x"]
    else:
        path = "/p/test_z.py"
    replayer = _replayer(_log(), objs)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        replayer.on_collect(path)
    assert records == []
    assert replayer.replayed == 0


def test_replay_error_filter_evicts_path(warm: dict[str, types.ModuleType]) -> None:
    """A filter turning a replayed warning into an error: nothing escapes on_collect, and the modules on the
    replayed path are removed from sys.modules (pytest imports them for real); others stay."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("error")
        replayer.on_collect("/p/test_x.py")
    assert "test_x" not in sys.modules
    assert "helper" not in sys.modules
    assert sys.modules.get("test_y") is warm["test_y"]


def test_replay_error_in_own_warning_keeps_clean_import(warm: dict[str, types.ModuleType]) -> None:
    """An error in the test module's own warning, after its import replayed cleanly: only the test module is
    evicted; the helper whose warnings were shown stays warm."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message="x")
        replayer.on_collect("/p/test_x.py")
    assert records == []
    assert "test_x" not in sys.modules
    assert sys.modules.get("helper") is warm["helper"]


def test_import_log_audit_records_only_while_active() -> None:
    """audit() records ("import", name) for the module whose body is running, only while active, and only
    for "import" events."""
    log = ImportLog()
    code = compile("log.audit('import', ('json', None, None, None, None))", "<fake>", "exec")
    exec(code, {"__name__": "fake_mod", "log": log})
    assert log.events == {}
    log.active = True
    exec(code, {"__name__": "fake_mod", "log": log})
    exec(compile("log.audit('open', ('f', 'r', 0))", "<fake>", "exec"), {"__name__": "fake_mod", "log": log})
    assert log.events == {"fake_mod": [("import", "json")]}
    log.active = False
    exec(code, {"__name__": "fake_mod", "log": log})
    assert log.events == {"fake_mod": [("import", "json")]}


def test_import_log_attribution_falls_back_to_root() -> None:
    """With no module body on the stack (other than __main__), events go to `root`. (Run in a fresh thread:
    the test's own stack may hold a module body, e.g. an xdist worker's.)"""
    log = ImportLog()
    log.active = True
    log.root = "top"
    code = compile("log.audit('import', ('a',))", "<m>", "exec")
    errors: list[BaseException] = []

    def target() -> None:
        try:
            exec(code, {"__name__": "__main__", "log": log})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert errors == []
    assert log.events == {"top": [("import", "a")]}


def test_import_log_showwarning_and_count() -> None:
    """showwarning() records the warning for the innermost module body; warning_count counts warns only."""
    log = ImportLog()
    log.active = True
    w = UserWarning("w")
    ns = {"__name__": "inner_mod", "log": log, "w": w}
    exec(compile("log.showwarning(w, UserWarning, '/p/inner.py', 7)\nlog.audit('import', ('z',))", "<m>", "exec"), ns)
    assert log.events == {"inner_mod": [("warn", w, UserWarning, "/p/inner.py", 7), ("import", "z")]}
    assert log.warning_count() == 1


def test_replay_error_in_shared_module_evicts_later_importers(warm: dict[str, types.ModuleType]) -> None:
    """When a shared module's replayed warning became an error (and it was evicted), a later warm test module
    that imports it must be imported for real too (evicted), as a plain run would fail its import again."""
    replayer = _replayer(_log(), warm)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        warnings.filterwarnings("error", category=DeprecationWarning)
        replayer.on_collect("/p/test_x.py")
        assert "helper" not in sys.modules
        replayer.on_collect("/p/test_y.py")
    assert "test_y" not in sys.modules


# --------------------------------------------------------------------------------------------------------
# warm xdist workers: the launcher (daemon/worker.py) and the controller's spec rewrite (xdist.py)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["-u", "-c", "print(1)"], "print(1)"),
        (["-u", "-B", "-c", "x"], "x"),
        (["-c", "x"], "x"),
        (["-u", "-c"], None),
        (["-u", "-c", "x", "extra"], None),
        (["-m", "mod"], None),
        (["-X", "dev", "-c", "x"], None),  # an interpreter option a forked child cannot honour
        ([], None),
    ],
)
def test_worker_code_accepts_only_what_execnet_passes(argv: list[str], code: str | None) -> None:
    from pytest_fastcollect.daemon.worker import worker_code

    assert worker_code(argv) == code


def test_launcher_without_a_daemon_becomes_the_real_interpreter(tmp_path: Path) -> None:
    """No daemon at the socket: the launcher execs `python -u -c CODE` itself (a cold worker), so the code
    runs with `python -c`'s sys.argv and sys.path[0], its output and its exit code."""
    code = "import sys; print('cold', sys.argv, repr(sys.path[0])); sys.exit(7)"
    proc = subprocess_run([sys.executable, "-m", "pytest_fastcollect.daemon.worker", str(tmp_path / "none.sock"),
                           "0" * 20, "-u", "-c", code])
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == "cold ['-c'] ''"


def subprocess_run(argv: list[str]) -> Any:
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class _Spec:
    """Stands in for execnet.XSpec: built from its string, attributes None unless given."""

    def __init__(self, text: str) -> None:
        self._spec = text
        self.id = None
        for part in text.split("//"):
            key, _, value = part.partition("=")
            setattr(self, key, value or True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return None

    def __str__(self) -> str:
        return self._spec


def test_warm_workers_rewrite_only_local_popen_specs_of_a_served_run() -> None:
    from pytest_fastcollect import xdist
    from pytest_fastcollect.daemon.runtime import ServedRun

    served = ServedRun(1, 0.0, 0, 0, "/run/user/1/pytest-fastcollect/k.sock", "k" * 20)
    specs: list[Any] = [_Spec("execmodel=main_thread_only//popen"), _Spec("popen//python=/usr/bin/python3"),
                        _Spec("ssh=host"), _Spec("popen//via=gw9")]
    specs[0].id = "gw0"
    assert xdist.warm_workers(None, specs, served) == 1  # type: ignore[arg-type]
    assert specs[0].python.split()[1:] == ["-m", "pytest_fastcollect.daemon.worker", served.socket, served.key]
    assert specs[0].id == "gw0" and specs[0].execmodel == "main_thread_only"
    assert [str(s) for s in specs[1:]] == ["popen//python=/usr/bin/python3", "ssh=host", "popen//via=gw9"]
    # a local run, or a worker, never rewrites
    local = [_Spec("popen")]
    assert xdist.warm_workers(None, local, None) == 0 and local[0].python is None  # type: ignore[arg-type]
    worker = ServedRun(1, 0.0, 0, 0, served.socket, served.key, worker=True)
    assert xdist.warm_workers(None, local, worker) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rss", "warm", "limit", "restarts"),
    [
        (300 * 1024, 200 * 1024, 0, False),  # no limit
        (300 * 1024, 200 * 1024, 400, False),  # under the limit
        (300 * 1024, 200 * 1024, 250, True),  # over it and grown since the warm-up
        (300 * 1024, 290 * 1024, 250, False),  # over it, but the warm state alone was: restarting would not help
        (None, 200 * 1024, 250, False),  # RSS unknown
    ],
)
def test_memory_restart_reason(rss: int | None, warm: int, limit: int, restarts: bool) -> None:
    from pytest_fastcollect.daemon.level1 import memory_restart_reason

    reason = memory_restart_reason(rss, warm, limit)
    assert (reason is not None) == restarts
    if restarts:
        assert reason == f"memory limit: RSS 300 MiB > {limit} MiB"


# --------------------------------------------------------------------------------------------------------
# measuring: which runs must see the project from its first import
# --------------------------------------------------------------------------------------------------------


class _Dist:
    def __init__(self, name: str, requires: list[str] | None = None) -> None:
        self.metadata = {"Name": name}
        self.requires = requires


@pytest.mark.parametrize(
    ("options", "dists", "fresh"),
    [
        ({"cov_source": ["pkg"]}, [_Dist("pytest-cov", ["coverage[toml]>=7.10"])], True),
        ({"cov_source": ["pkg"], "no_cov": True}, [_Dist("pytest-cov", ["coverage>=7"])], False),
        ({"cov_source": None}, [_Dist("pytest_cov", ["coverage>=7"])], False),  # installed, not asked for
        ({"testmon": True}, [_Dist("pytest-testmon", ["coverage<8,>=6"])], True),
        ({}, [_Dist("pytest-testmon", ["coverage<8,>=6"])], False),
        ({}, [_Dist("pytest-measure-something", ["coverage"])], True),  # unknown: taken as measuring
        ({}, [_Dist("pytest-docs", ["sphinx", 'coverage; extra == "cov"'])], False),  # only for an extra
        ({}, [_Dist("pytest-xdist", ["execnet>=2.1", "pytest>=7"])], False),
        ({}, [_Dist("broken", None)], False),
    ],
)
def test_fresh_reason_from_options_and_plugins(options: dict[str, Any], dists: list[_Dist], fresh: bool) -> None:
    from pytest_fastcollect.measuring import fresh_reason

    assert (fresh_reason(types.SimpleNamespace(**options), dists) is not None) == fresh


def test_local_reason_sees_what_really_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_fastcollect.measuring import local_reason

    assert local_reason({}) is None
    assert "COVERAGE_PROCESS_START" in (local_reason({"COVERAGE_PROCESS_START": "/x/.coveragerc"}) or "")
    assert "PYTHONHASHSEED=random" in (local_reason({"PYTHONHASHSEED": "random"}) or "")
    assert local_reason({"PYTHONHASHSEED": "0"}) is None
    old = sys.getprofile()
    sys.setprofile(lambda *a: None)
    try:
        assert "profile function" in (local_reason({}) or "")
    finally:
        sys.setprofile(old)


# --------------------------------------------------------------------------------------------------------
# procstate: what a run inherits
# --------------------------------------------------------------------------------------------------------


def test_capture_describes_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_fastcollect.daemon import procstate

    for name in ("stdin", "stdout", "stderr"):  # the interpreter's streams (pytest's capture replaced them)
        monkeypatch.setattr(sys, name, getattr(sys, f"__{name}__"))
    state, fds = procstate.capture()
    assert procstate.problem(state, len(fds)) is None
    assert state["fds"] == fds and all(not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC for fd in fds)
    assert state["umask"] == procstate.umask()
    assert state["orig_argv"] == list(sys.orig_argv)


def test_install_fds_puts_fds_at_the_callers_numbers_and_refuses_a_taken_one(tmp_path: Path) -> None:
    """In a forked child (install_fds rearranges fds 0-2): the received fds land at their targets; a
    target already held by something else is refused (Unservable) instead of being overwritten."""
    from pytest_fastcollect.daemon import procstate

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 0
        try:
            os.close(r)
            held = os.open(os.devnull, os.O_RDONLY)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                procstate.install_fds([devnull], [held])
                code = 1  # it overwrote `held`
            except procstate.Unservable:
                pass
            procstate.install_fds([w], [0, 1, 2, 50][3:])  # fd 50 <- the pipe; 0, 1 and 2 closed
            os.write(50, b"ok")
            for fd in (0, 1, 2):
                try:
                    os.fstat(fd)
                    code = 2
                except OSError:
                    pass
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    data = os.read(r, 10)
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0 and data == b"ok"


# --------------------------------------------------------------------------------------------------------
# runs: the fork server's run table
# --------------------------------------------------------------------------------------------------------


def test_run_table_tells_the_client_the_reaped_status() -> None:
    from pytest_fastcollect.daemon.runs import RunTable, exit_message

    assert exit_message(0) == {"type": "exit", "code": 0}
    assert exit_message(3 << 8) == {"type": "exit", "code": 3}
    assert exit_message(signal.SIGTERM) == {"type": "exit", "code": 128 + signal.SIGTERM, "signal": signal.SIGTERM}
    table = RunTable()
    ours, theirs = socket.socketpair()
    table.add(4242, ours)
    assert 4242 in table and table.owns(ours) and len(table) == 1
    assert table.ended(9999, 0) is None  # not a run: another child of the server
    run = table.ended(4242, 7 << 8)
    assert run is not None and run.pid == 4242 and not table
    message, _ = protocol.recv(theirs, deadline=time.monotonic() + 5)
    assert message == {"type": "exit", "code": 7}
    theirs.close()


def test_run_table_terminates_a_run_whose_client_went_away() -> None:
    from pytest_fastcollect.daemon import runs

    child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # leads its own group, as a run does
    try:
        table = runs.RunTable()
        ours, theirs = socket.socketpair()
        table.add(child.pid, ours)
        theirs.close()  # the client is gone
        table.client_event(ours)
        assert child.wait(timeout=10) == -signal.SIGTERM
        (run,) = list(table)
        assert run.conn is None and run.client_gone_at is not None
        table.escalate(now=run.client_gone_at + runs.KILL_GRACE + 1)  # (already dead: no error)
    finally:
        child.kill()
        child.wait()
