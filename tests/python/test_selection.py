"""-k/-m before import (issue #3): recorded collection, its validity, and the files a run leaves unimported.

The referee is the judge throughout: every plugin-side run is compared with `-p no:fastcollect` (node IDs,
order, deselected count, outcomes, summary line, exit code), and each test also checks that files really
were left unimported (else the comparison would prove nothing).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_fastcollect import _core, records
from pytest_fastcollect.parity.referee import format_report, referee, without_selection
from pytest_fastcollect.records import SCHEMA, FileRecord, ItemRecord, RecordStore, json_scalar_kwargs, store_path
from pytest_fastcollect.selection import decide, expressions, selectable
from pytest_fastcollect.validity import changed, fingerprint

from _corpus import corpus_cases

BASE = ["-p", "no:cacheprovider"]


def _compile(text: str):
    expr, _, message = _core.compile_expression(text)
    assert expr is not None, message
    return expr


def _record(*items: tuple[str, list[str], list]) -> FileRecord:
    return FileRecord("/p/test_x.py", ["test_x.py", "p"], [ItemRecord(n, names, marks) for n, names, marks in items])


# -- the evaluator on records ---------------------------------------------------------------------------


RECORD = _record(
    ("test_x.py::test_one", ["test_one"], []),
    ("test_x.py::TestK::test_two[a-1]", ["TestK", "test_two[a-1]", "slow"], [("slow", {}), ("owner", {"name": "bob", "n": 1})]),
)


@pytest.mark.parametrize(
    ("keyword", "mark", "expected"),
    [
        ("test_one", None, True),
        ("nothing", None, False),
        ("TEST_ONE", None, True),  # case-insensitive substring
        ("a-1", None, True),  # param id inside the item name
        ("test_x.py", None, True),  # the file's name is shared by every item
        ("not test_x", None, False),
        ("not test_one and not testk", None, False),
        ("not test_one and slow", None, True),  # a marker name used with -k
        ("(nothing or testk) and not one", None, True),
        (None, "slow", True),
        (None, "not slow", True),  # test_one has no mark
        (None, "owner(name='bob')", True),
        (None, "owner(name='alice')", False),
        (None, "owner(n=1)", True),
        (None, "owner(n=True)", True),  # pytest compares with ==: True == 1
        (None, "owner(name='bob', n=2)", False),
        ("test_one", "slow", False),  # both must hold for one item
        ("test_two", "slow", True),
    ],
)
def test_selectable_follows_pytest_rules(keyword, mark, expected) -> None:
    k = _compile(keyword) if keyword else None
    m = _compile(mark) if mark else None
    assert selectable(RECORD, k, m) is expected


def test_undecidable_values_mean_import() -> None:
    # kwargs that were not JSON scalars are unknown: -m with kwargs on that mark cannot say "false"
    record = _record(("t.py::test_a", ["test_a"], [("owner", None)]))
    assert selectable(record, None, _compile("owner(name='x')")) is True
    assert selectable(record, None, _compile("owner")) is True
    assert selectable(record, None, _compile("not owner")) is False
    # -k with call arguments is a UsageError in pytest: never decided here
    assert selectable(record, _compile("test_a(x=1)"), None) is True
    assert json_scalar_kwargs({"a": 1, "b": "s", "c": None, "d": 1.5}) == {"a": 1, "b": "s", "c": None, "d": 1.5}
    assert json_scalar_kwargs({"a": object()}) is None


@pytest.mark.parametrize("text", ["test_one", "TEST_ONE", "not slow", "p and (x or test_two)", "test_a(x=1)",
                                  "not test_a(x=1) and nothing", "two[a-1]", "K"])
@pytest.mark.parametrize("names", [["test_x.py", "p", "test_one"], ["test_x.py", "TestK", "test_two[a-1]", "slow"], []])
def test_keywords_evaluated_in_cpp_equal_a_python_matcher(text: str, names: list[str]) -> None:
    def matcher(ident: str, kwargs: dict) -> bool | None:
        return None if kwargs else any(ident.lower() in n.lower() for n in names)

    expr = _compile(text)
    assert expr.evaluate_keywords(names) == expr.evaluate(matcher)


def test_decide_keeps_excluded_files_and_empty_records_are_skipped() -> None:
    empty = FileRecord("/p/test_empty.py", ["test_empty.py"], [])
    valid = {RECORD.path: RECORD, empty.path: empty}
    assert set(decide(valid, _compile("nothing"), None)) == {RECORD.path, empty.path}
    assert set(decide(valid, _compile("nothing"), None, exclude=[RECORD.path])) == {empty.path}
    assert set(decide(valid, _compile("test_one"), None)) == {empty.path}


def _stored(record: FileRecord, digest: str) -> FileRecord:
    """`record` as the store hands it out: JSON text decoded on first use, with a digest."""
    stored = FileRecord(record.path, text=record.encode())
    stored.digest = digest
    return stored


def test_decide_reuses_a_decision_only_for_the_same_record_digest() -> None:
    keyword = _compile("test_one")  # RECORD holds test_one: selectable
    # a stored decision for this digest is taken as it is (here a made-up "nothing selectable"): no evaluation
    learnt: list = []
    skip = decide({RECORD.path: _stored(RECORD, "d1")}, keyword, None, known={RECORD.path: ("d1", False)},
                  learnt=learnt)
    assert list(skip) == [RECORD.path] and learnt == []
    # the record changed since (another digest): evaluated again, and what was learnt is handed back
    skip = decide({RECORD.path: _stored(RECORD, "d2")}, keyword, None, known={RECORD.path: ("d1", False)},
                  learnt=learnt)
    assert skip == {} and learnt == [(RECORD.path, "d2", True)]
    learnt.clear()
    skip = decide({RECORD.path: _stored(RECORD, "d2")}, _compile("nothing"), None, learnt=learnt)
    assert list(skip) == [RECORD.path] and learnt == [(RECORD.path, "d2", False)]
    assert [i.nodeid for i in skip[RECORD.path].items] == [i.nodeid for i in RECORD.items]


def test_decide_imports_a_record_that_does_not_decode() -> None:
    bad = FileRecord("/p/test_bad.py", text='{"names": ["x"], "items": [["only two", []]]}')
    bad.digest = "d"
    worse = FileRecord("/p/test_worse.py", text="not json")
    worse.digest = "e"
    broken: list = []
    learnt: list = []
    # even a stored "nothing selectable" decision does not skip a file whose record cannot list its node IDs
    skip = decide({bad.path: bad, worse.path: worse}, _compile("nothing"), None, known={bad.path: ("d", False)},
                  learnt=learnt, broken=broken)
    assert skip == {} and sorted(broken) == [bad.path, worse.path] and learnt == []


def test_expressions_report_what_does_not_compile() -> None:
    class Options:
        keyword = "  test_a"
        markexpr = ""

    keyword, mark, error = expressions(Options())
    assert keyword is not None and mark is None and error == ""
    Options.keyword = "a and"
    assert expressions(Options())[2].startswith("-k does not compile")
    assert without_selection(["-k", "x", "-mslow", "-q", "--maxfail=1", "-m", "y", "tests"]) == ["-q", "--maxfail=1", "tests"]


# -- storage and file identity --------------------------------------------------------------------------


def test_store_round_trip_and_key_separation(tmp_path: Path) -> None:
    store = RecordStore(str(tmp_path / "r.sqlite"), read_only=False)
    assert store.warning == ""
    manifest = {"files": {"/p/m.py": [1, 2, 3, 4, 5, 6]}}
    assert store.save("key1", "m1", manifest, [(RECORD, [1, 2, 3, 4, 5, 6])])
    loaded, manifests = store.load("key1")
    assert list(loaded) == [RECORD.path] and manifests == {"m1": manifest}
    got = loaded[RECORD.path]
    assert [i.nodeid for i in got.items] == [i.nodeid for i in RECORD.items]
    assert [tuple(m) for m in got.items[1].marks] == [("slow", {}), ("owner", {"name": "bob", "n": 1})]
    assert got.fp == [1, 2, 3, 4, 5, 6] and got.manifest == "m1"
    assert store.load("other") == ({}, {})
    # forgetting a file, and unused manifests go away
    assert store.save("key1", "m2", {"files": {}}, [], forget=[RECORD.path])
    store.close()
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    assert [r[0] for r in db.execute("SELECT id FROM manifests")] == []


def test_store_keeps_digests_and_decisions_per_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RecordStore(str(tmp_path / "r.sqlite"), read_only=False)
    assert store.save("key1", "m1", {"files": {}}, [(RECORD, [1, 2, 3, 4, 5, 6])])
    got = store.load("key1")[0][RECORD.path]
    assert len(got.digest) == 32 and got.ids_digest == records.nodeids_digest(i.nodeid for i in RECORD.items)
    assert got.ids_digest != records.nodeids_digest(i.nodeid for i in RECORD.items[::-1])
    assert store.decisions("q1") == {}
    assert store.save_decisions("q1", [(RECORD.path, got.digest, False)])
    assert store.decisions("q1") == {RECORD.path: (got.digest, False)} and store.decisions("q2") == {}
    # the same items give the same digest; other items another one
    other = FileRecord(RECORD.path, RECORD.names, RECORD.items[:1])
    assert store.save("key1", "m1", {"files": {}}, [(other, [1, 2, 3, 4, 5, 6])])
    assert store.load("key1")[0][RECORD.path].digest != got.digest
    # only the newest DECISION_QUERIES queries are kept
    monkeypatch.setattr(records, "DECISION_QUERIES", 3)
    for n in range(2, 6):
        assert store.save_decisions(f"q{n}", [(RECORD.path, "d", True)])
    assert store.decisions("q1") == {} and store.decisions("q2") == {}
    assert store.decisions("q5") == {RECORD.path: ("d", True)}
    # a forgotten file loses its decisions too
    assert store.save("key1", "m1", {"files": {}}, [], forget=[RECORD.path])
    assert store.decisions("q5") == {}
    store.close()
    ro = RecordStore(str(tmp_path / "r.sqlite"), read_only=True)
    assert not ro.save_decisions("q9", [(RECORD.path, "d", True)]) and ro.decisions("q9") == {}
    ro.close()


def test_a_new_store_deletes_the_records_of_earlier_schemas(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    old = [tmp_path / f"records-v1.sqlite{suffix}" for suffix in ("", "-wal", "-shm")]
    for path in old:
        path.write_bytes(b"old")
    store = RecordStore(store_path(str(cache)), read_only=False)
    assert store.warning == "" and not any(p.exists() for p in old)
    store.close()
    assert os.path.basename(store_path(str(cache))) == f"records-v{SCHEMA}.sqlite"


@pytest.mark.parametrize("damage", ["garbage", "empty-tables", "newer-schema"])
def test_damaged_store_is_rebuilt_read_write_and_ignored_read_only(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "r.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "empty-tables":
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version={SCHEMA}")
        db.commit()
        db.close()
    else:
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version=99")
        db.commit()
        db.close()
    ro = RecordStore(str(path), read_only=True)
    assert ro.load("k") == ({}, {}) and "unusable" in ro.warning
    assert not ro.save("k", "m", {"files": {}}, [(RECORD, [1, 2, 3, 4, 5, 6])])
    ro.close()
    rw = RecordStore(str(path), read_only=False)
    # a file that is not a database or of another schema is replaced; missing tables are created
    assert ("rebuilt" in rw.warning) == (damage != "empty-tables"), rw.warning
    assert rw.save("k", "m", {"files": {}}, [(RECORD, [1, 2, 3, 4, 5, 6])])
    assert list(rw.load("k")[0]) == [RECORD.path]
    rw.close()


def test_missing_store_read_only_is_no_records(tmp_path: Path) -> None:
    store = RecordStore(str(tmp_path / "none.sqlite"), read_only=True)
    assert store.load("k") == ({}, {})
    assert not (tmp_path / "none.sqlite").exists()


def test_changed_sees_same_size_same_mtime_edits_and_deletions(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 1\n")
    entries = fingerprint([str(a), str(b)], time.time_ns() + 2_000_000_000)  # read 2 s after the writes
    assert changed(entries) == set()
    st = a.stat()
    a.write_text("x = 2\n")  # same size
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the racy rule or the hash sees it
    b.unlink()
    assert changed(entries) == {str(a), str(b)}


def test_fingerprint_reuses_a_settled_hash(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    old = time.time_ns() - 10_000_000_000
    os.utime(a, ns=(old, old))
    later = time.time_ns() + 2_000_000_000  # read well after the write (and after utime's ctime)
    first = fingerprint([str(a)], later)
    fake = {str(a): [*first[str(a)][:4], 12345, first[str(a)][5]]}  # a hash it would never compute
    assert fingerprint([str(a)], later, fake)[str(a)][4] == 12345  # stat equal, not racy: not re-read
    assert changed(fake) == set()


def test_a_file_written_after_it_was_read_is_never_trusted(tmp_path: Path) -> None:
    """fingerprints.py: a file modified when or after it was read counts as changed, whatever its bytes:
    what was read may be older than what was hashed (an edit while a recording run collected); one modified
    shortly before it was read is hashed, and trusted when its bytes are the same."""
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    read_ns = a.stat().st_mtime_ns - 1  # "read" just before the write
    entries = fingerprint([str(a)], read_ns)
    assert changed(entries) == {str(a)}
    racy = fingerprint([str(a)], a.stat().st_mtime_ns + 200_000_000)  # read 0.2 s after the write
    assert changed(racy) == set()
    settled = fingerprint([str(a)], a.stat().st_mtime_ns + 2_000_000_000)
    assert changed(settled) == set()


# -- end to end -----------------------------------------------------------------------------------------


def _pytest(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # the referee's plugin side loads its recorder plugin: `-p` options are part of a record's key
        [sys.executable, "-m", "pytest", *BASE, *args, "-p", "pytest_fastcollect.parity.recorder"], cwd=root, capture_output=True, text=True, timeout=120,
        env=env,
    )


def _header(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("fastcollect: -k/-m")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


def _check(root: Path, args: list[str], *, run: bool = True, min_skipped: int = 1, **kw) -> None:
    cmp = referee(root, [*BASE, *args], run=run, timeout=120, **kw)
    report = format_report(cmp)
    assert cmp.ok, report
    skipped = cmp.plugin.record["fastcollect"]["skipped_files"]
    assert skipped is not None and skipped >= min_skipped, f"files left unimported: {skipped}\n{report}"


SELECTION_MATRIX = [
    ["-k", "test_alpha_one"],  # a single test name
    ["-k", "TestAlphaGroup"],  # a class name
    ["-k", "integration"],  # a directory name
    ["-k", "not integration"],
    ["-k", "slow"],  # a marker name used as -k
    ["-k", "why"],  # a param id
    ["-k", "2"],  # a param id from a project module
    ["-k", "(alpha or beta) and not slow"],  # parenthesised mix
    ["-k", "pkg and not slow"],  # a package name
    ["-m", "owner(name='bob')"],  # -m with kwargs, module-level pytestmark
    ["-m", "owner(name='alice')"],
    ["-m", "db"],  # a mark only a conftest hook adds
    ["-m", "net or slow"],
    ["-m", "not slow", "-k", "one"],
    ["-k", "inherited"],  # tests inherited from another test file
    ["-k", "nothing_matches_this"],  # no test selected: exit code 5, every file skipped
]


@pytest.mark.parametrize("args", SELECTION_MATRIX, ids=lambda a: " ".join(a))
def test_selection_matrix_on_the_selection_corpus(args: list[str], corpus_copy) -> None:
    root = corpus_copy("selection")
    _check(root, args, prime=BASE)


def test_warning_modules_and_failed_collections_are_always_imported(corpus_copy) -> None:
    root = corpus_copy("selection")
    (root / "unit" / "test_broken.py").write_text("def test_broken(:\n")
    _pytest(root, "--collect-only", "-q")
    proc = _pytest(root, "-k", "nothing_matches_this")
    # the module warning at import and the file that does not import are imported every time
    assert "this module warns at import" in proc.stdout
    assert "test_broken.py" in proc.stdout and "ERROR" in proc.stdout
    _check(root, ["-k", "nothing_matches_this"])


@pytest.mark.parametrize("case", corpus_cases())
@pytest.mark.parametrize("expr", [["-k", "not zzz_nothing"], ["-k", "zzz_nothing"], ["-m", "slow or not slow"]])
def test_corpus_parity_with_records(case: str, expr: list[str], corpus_copy) -> None:
    root = corpus_copy(case)
    cmp = referee(root, [*BASE, *expr], run=True, timeout=120, prime=BASE)
    assert cmp.ok, format_report(cmp)


def test_first_run_records_second_run_skips(corpus_copy) -> None:
    root = corpus_copy("selection")
    first = _pytest(root, "-k", "test_alpha_one")
    assert "0 test files left unimported" in _header(first)
    assert "8 not recorded yet" in _header(first)
    second = _pytest(root, "-k", "test_alpha_one")
    # 8 test files: test_alpha.py holds the test, test_warns.py warns at import (never recorded)
    assert "6 test files left unimported" in _header(second), second.stdout
    assert "records valid for 7 files, 1 not recorded yet" in _header(second)
    assert "1 passed, 20 deselected" in second.stdout
    strict = _pytest(root, "-k", "test_alpha_one", "--fastcollect-strict")
    assert "every test file imported (--fastcollect-strict)" in _header(strict)
    assert "1 passed, 20 deselected" in strict.stdout
    # --fastcollect-cache-clear deletes the records with the discovery cache: this run imports and records
    cleared = _pytest(root, "-k", "test_alpha_one", "--fastcollect-cache-clear")
    assert "0 test files left unimported" in _header(cleared) and "8 not recorded yet" in _header(cleared)
    assert "6 test files left unimported" in _header(_pytest(root, "-k", "test_alpha_one"))


def test_corrupt_records_are_set_aside_and_rebuilt(corpus_copy) -> None:
    """D7: 2,000 random bytes at offset 5000 of records-v2.sqlite used to leave every later -k run at
    "records valid for 0 files" with no warning, for ever. Now the run says so, sets the file aside as
    records-v2.sqlite.corrupt and records again; the run after that leaves files unimported."""
    root = corpus_copy("selection")
    for _ in range(3):  # records; a decision per query; the file grows past offset 7000
        _pytest(root, "-k", "test_alpha_one")
        _pytest(root, "-k", "test_beta")
    from pytest_fastcollect.cache import user_cache_dir

    (db,) = user_cache_dir(root.resolve()).glob("records-v*.sqlite")  # (BASE turns pytest's cache off)
    checkpoint = sqlite3.connect(db)  # everything into the main file (a WAL would hold the newest pages)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = checkpoint.execute("PRAGMA page_size").fetchone()[0]
    (root_page,) = checkpoint.execute("SELECT rootpage FROM sqlite_master WHERE name = 'files'").fetchone()
    checkpoint.close()
    with open(db, "r+b") as fh:  # 2,000 random bytes over the files table's root page (header, cells)
        fh.seek(page * (root_page - 1))
        fh.write(random.Random(1).randbytes(2000))
    damaged = _pytest(root, "-k", "test_alpha_one")
    assert "1 passed, 20 deselected" in damaged.stdout, damaged.stdout
    assert "fastcollect: records were corrupt" in damaged.stdout and "set aside" in damaged.stdout, _header(damaged)
    assert db.with_name(db.name + ".corrupt").exists()
    _pytest(root, "-k", "test_alpha_one")
    healed = _pytest(root, "-k", "test_alpha_one")
    assert "6 test files left unimported" in _header(healed), healed.stdout


def test_an_expression_nested_deeper_than_the_parser_takes_imports_every_file(corpus_copy) -> None:
    """kMaxNesting (200) is below the depth pytest itself fails at: 250 parentheses compile in pytest, and
    the plugin then imports every file (the slow, plain path), with the same outcome."""
    root = corpus_copy("selection")
    _pytest(root, "--collect-only", "-q")
    deep = "(" * 250 + "test_alpha_one" + ")" * 250
    proc = _pytest(root, "-k", deep)
    assert "every test file imported (-k does not compile (expression is nested too deeply))" in _header(proc)
    _check(root, ["-k", deep], min_skipped=0)


INSTALLED_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if "test_b.py" in item.nodeid and False:
            item.add_marker(pytest.mark.slow)
"""


def test_an_edit_of_an_installed_conftest_invalidates_the_records(tmp_path: Path) -> None:
    """issue #21's networkx case: `--pyargs pkg` where pkg (its conftest and tests) is installed in
    site-packages. A conftest edit that marks more items `slow` must change what `-m slow` selects; the
    manifest left every file under the site folders out, so the records stayed valid and lost tests."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    import sysconfig

    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # pytest and the plugin
    pkg = site / "fakepkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tests" / "__init__.py").write_text("")
    (pkg / "conftest.py").write_text(INSTALLED_CONFTEST)
    (pkg / "tests" / "test_a.py").write_text("import pytest\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n")
    (pkg / "tests" / "test_b.py").write_text("import pytest\n\n@pytest.mark.parametrize('x', range(3))\ndef test_b(x):\n    pass\n")
    (pkg / "tests" / "test_c.py").write_text("def test_c():\n    pass\n")
    past = time.time() - 10
    for path in pkg.rglob("*"):
        os.utime(path, (past, past))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    python = str(venv / "bin" / "python")

    def pytest_run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-m", "pytest", "--pyargs", "fakepkg", "-m", "slow", "-p", "no:cacheprovider",
                               "-W", "ignore::pytest.PytestUnknownMarkWarning", *extra], cwd=cwd,
                              capture_output=True, text=True, timeout=120)

    pytest_run()
    second = pytest_run()
    assert "1 passed, 4 deselected" in second.stdout, second.stdout + second.stderr
    assert "2 test files left unimported" in second.stdout, second.stdout
    conftest = pkg / "conftest.py"
    conftest.write_text(INSTALLED_CONFTEST.replace(" and False", ""))
    plain = pytest_run("-p", "no:fastcollect")
    assert "4 passed, 1 deselected" in plain.stdout, plain.stdout
    after = pytest_run()
    assert "4 passed, 1 deselected" in after.stdout, after.stdout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("what", "args"),
    [
        ("test file", ["-k", "renamed"]),
        ("imported project module", ["-k", "4"]),
        ("imported test file", ["-k", "gamma_extra"]),
        ("conftest hook", ["-m", "db"]),
        ("environment", ["-k", "flavoured"]),
        ("new test file", ["-k", "brand_new"]),
        ("deleted test file", ["-k", "beta"]),
    ],
)
def test_stale_records_are_never_used(what: str, args: list[str], corpus_copy, monkeypatch) -> None:
    """After each change, a record that would now be wrong must not decide anything: the referee stays at
    0 differences (a stale record would leave a now-selected test unimported, or keep a deleted one)."""
    root = corpus_copy("selection")
    env = None
    assert _pytest(root, "--collect-only", "-q").returncode == 0
    time.sleep(0.01)
    if what == "test file":
        _edit(root / "unit" / "test_beta.py", "def test_beta_one", "def test_renamed_beta_one")
    elif what == "imported project module":
        _edit(root / "helpers.py", "SIZES = [1, 2, 3]", "SIZES = [1, 2, 3, 4]")
    elif what == "imported test file":
        _edit(root / "unit" / "test_gamma_base.py", "def test_inherited", "def test_gamma_extra(self):\n        pass\n\n    def test_inherited")
    elif what == "conftest hook":
        _edit(root / "conftest.py", '"database" in item.name', '"database" in item.name or "beta" in item.name')
    elif what == "environment":
        monkeypatch.setenv("SELECTION_FLAVOUR", "chocolate")
    elif what == "new test file":
        (root / "integration" / "test_brand_new.py").write_text("def test_brand_new():\n    pass\n")
    else:
        (root / "unit" / "test_beta.py").unlink()
    # the run right after the change: records it cannot trust are not used (a change to a project module,
    # a conftest or the environment invalidates them all)
    _check(root, args, env=env, min_skipped=0)
    # and the run after that uses the records the previous one wrote
    _check(root, args, env=env, min_skipped=1)


def test_an_edit_in_a_sibling_project_invalidates_the_records(tmp_path: Path) -> None:
    """A test file parametrizes over a module of a sibling project (a folder on `pythonpath` outside rootdir,
    as an editable install of another project would be): editing that module in place changes the ids, so the
    records written before it must not decide the next `-k` run (the referee stays at 0 differences)."""
    root, sibling = tmp_path / "proj", tmp_path / "sibling"
    (root / "tests").mkdir(parents=True)
    sibling.mkdir()
    (sibling / "sizes.py").write_text("SIZES = [1, 2, 3]\n")
    # an absolute path (`../sibling` would make `__file__` start with rootdir: the folder of an editable install)
    (root / "pytest.ini").write_text(f"[pytest]\ntestpaths = tests\npythonpath = {sibling}\n")
    (root / "tests" / "test_sizes.py").write_text(
        "import pytest\nfrom sizes import SIZES\n\n@pytest.mark.parametrize('n', SIZES)\ndef test_size(n):\n    pass\n"
    )
    (root / "tests" / "test_other.py").write_text("def test_other():\n    pass\n")
    assert _pytest(root, "--collect-only", "-q").returncode == 0
    _check(root, ["-k", "other"])  # recorded: test_sizes.py is left unimported
    time.sleep(0.01)
    (sibling / "sizes.py").write_text("SIZES = [1, 2, 3, 4]\n")
    _check(root, ["-k", "4"], min_skipped=0)  # the record of test_sizes.py is stale: it must be imported
    _check(root, ["-k", "4"])


def test_a_conftest_that_drops_items_keeps_its_files_imported(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        "def pytest_collection_modifyitems(items):\n"
        "    items[:] = [i for i in items if 'dropped' not in i.name]\n"
    )
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_dropped(): pass\n", test_b="def test_b(): pass\n")
    root = pytester.path
    _pytest(root, "--collect-only", "-q")
    proc = _pytest(root, "-k", "test_a")
    assert "1 test files left unimported" in _header(proc)  # test_b only: test_a.py lost an item silently
    cmp = referee(root, [*BASE, "-k", "test_a"], run=True, timeout=120)
    assert cmp.ok, format_report(cmp)


def test_decisions_are_stored_per_expression_and_a_damaged_record_is_rebuilt(pytester: pytest.Pytester) -> None:
    """A -k run stores its per-file decisions; the next run with the same -k reuses them. A record whose items
    no longer decode (here: its data replaced, digest kept, so the stored decision still points at it) is
    never trusted to leave its file unimported: that run imports it and records it again."""
    from pytest_fastcollect.cache import user_cache_dir

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_a="def test_a(): pass\n", test_b="def test_b(): pass\n")
    root = pytester.path
    assert _pytest(root, "--collect-only", "-q").returncode == 0
    first = _pytest(root, "-k", "test_a")
    assert "1 test files left unimported" in _header(first) and "1 passed, 1 deselected" in first.stdout
    db = sqlite3.connect(store_path(str(user_cache_dir(root) / "discovery.sqlite")))
    decided = db.execute("SELECT path, selectable FROM decisions").fetchall()
    assert sorted((os.path.basename(p), s) for p, s in decided) == [("test_a.py", 1), ("test_b.py", 0)]
    with db:
        db.execute("UPDATE files SET data = 'not json' WHERE path LIKE '%test_b.py'")
    second = _pytest(root, "-k", "test_a")
    assert "0 test files left unimported" in _header(second) and "1 passed, 1 deselected" in second.stdout
    data = db.execute("SELECT data FROM files WHERE path LIKE '%test_b.py'").fetchone()[0]
    assert FileRecord.decode("test_b.py", data).items[0].nodeid == "test_b.py::test_b"
    db.close()
    third = _pytest(root, "-k", "test_a")
    assert "1 test files left unimported" in _header(third) and "1 passed, 1 deselected" in third.stdout


def test_a_foreign_itemcollected_hook_sees_real_items(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        "def pytest_itemcollected(item):\n"
        "    assert item.obj is not None  # would fail on a stand-in\n"
    )
    pytester.makepyfile(test_a="def test_a(): pass\n", test_b="def test_b(): pass\n")
    root = pytester.path
    _pytest(root, "--collect-only", "-q")
    proc = _pytest(root, "-k", "test_a")
    assert "every test file imported (" in _header(proc) and "implements pytest_itemcollected" in _header(proc)
    cmp = referee(root, [*BASE, "-k", "test_a"], run=True, timeout=120)
    assert cmp.ok, format_report(cmp)


def test_a_coverage_run_leaves_no_test_file_unimported(pytester: pytest.Pytester) -> None:
    """With --cov, a test file left unimported would leave out of the coverage report the module only it
    imports (found by the plugin matrix: mypkg/extra.py at 0% instead of 75%): every file is imported."""
    pytest.importorskip("pytest_cov")
    pytester.makeini("[pytest]\n")
    pkg = pytester.mkpydir("mypkg")
    (pkg / "core.py").write_text("def classify(x):\n    return x > 0\n")
    (pkg / "extra.py").write_text("A = 1\n\ndef extra():\n    return A\n")
    pytester.makepyfile(test_core="from mypkg.core import classify\n\ndef test_classify():\n    assert classify(1)\n",
                        test_extra="from mypkg.extra import extra\n\ndef test_extra():\n    assert extra()\n")
    root = pytester.path
    args = ["--cov=mypkg", "--cov-report=term-missing", "-k", "classify"]
    _pytest(root, "--collect-only", "-q")
    proc = _pytest(root, *args)
    assert "every test file imported (" in _header(proc) and "what is imported is measured" in _header(proc)
    cmp = referee(root, [*BASE, *args], run=True, timeout=120)
    assert cmp.ok, format_report(cmp)


def test_xdist_workers_apply_the_controllers_decision(corpus_copy) -> None:
    pytest.importorskip("xdist")
    root = corpus_copy("selection")
    # xdist's controller collects nothing and workers never write: gw0 sends what it collected back to the
    # controller, which records it under the run's xdist key (a run without -n has records of its own)
    # (a --collect-only prime would not do: xdist turns itself off there)
    assert _pytest(root, "-n", "2", "-p", "no:randomly").returncode == 1  # the corpus holds a failing test
    for args in (["-k", "alpha"], ["-m", "slow"], ["-k", "nothing_matches_this"]):
        cmp = referee(root, [*BASE, "-n", "2", "-p", "no:randomly", *args], run=True, timeout=180)
        assert cmp.ok, format_report(cmp)
        assert cmp.plugin.record["fastcollect"]["skipped_files"] >= 1, format_report(cmp)


@pytest.mark.parametrize("xdist_args", [[], ["-n", "2"]], ids=["local", "xdist"])
def test_unimported_files_are_really_not_imported(pytester: pytest.Pytester, xdist_args: list[str], monkeypatch) -> None:
    """Each test module logs its import; after a recorded run, `-k` imports only the file that holds the
    selected test, in the process that collects (the run itself, or every xdist worker)."""
    if xdist_args:
        pytest.importorskip("xdist")
    log = pytester.path / "imports.log"
    monkeypatch.setenv("IMPORT_LOG", str(log))
    pytester.makeini("[pytest]\n")
    body = "import os\nwith open(os.environ['IMPORT_LOG'], 'a') as fh:\n    fh.write(__name__ + '\\n')\n"
    for n in range(4):
        pytester.makepyfile(**{f"test_m{n}": body + f"def test_f{n}(): pass\ndef test_g{n}(): pass\n"})
    root = pytester.path
    # the first run records (with -n: gw0 collects, the controller writes)
    assert _pytest(root, "-q", "-p", "no:randomly", *xdist_args).returncode == 0
    log.unlink()
    proc = _pytest(root, "-k", "test_f2", "-p", "no:randomly", *xdist_args)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed" in proc.stdout
    imported = log.read_text().split()
    assert set(imported) == {"test_m2"}, imported
    if not xdist_args:
        assert "1 passed, 7 deselected" in proc.stdout


def test_xdist_runs_record_apart_from_runs_without_xdist(pytester: pytest.Pytester) -> None:
    """A project only ever run with `-n` gets records too (gw0 collects, the controller writes them under the
    run's xdist key); a run without `-n` keeps records of its own, and neither overwrites the other's."""
    pytest.importorskip("xdist")
    pytester.makeini("[pytest]\n")
    for n in range(3):
        pytester.makepyfile(**{f"test_m{n}": f"def test_f{n}(): pass\n"})
    root = pytester.path
    xdist_run = ["-n", "2", "-p", "no:randomly", "-k", "test_f1"]
    first = _pytest(root, *xdist_run)
    assert "0 test files left unimported" in _header(first) and "3 not recorded yet" in _header(first)
    again = _pytest(root, *xdist_run)
    assert "2 test files left unimported" in _header(again) and "1 passed" in again.stdout, again.stdout
    # the controller stored its decisions for this -k (it collects nothing itself: written at the end)
    from pytest_fastcollect.cache import user_cache_dir

    db = sqlite3.connect(store_path(str(user_cache_dir(root) / "discovery.sqlite")))
    try:
        assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
    finally:
        db.close()
    local = _pytest(root, "-p", "no:randomly", "-k", "test_f1")
    assert "3 not recorded yet" in _header(local)
    assert "2 test files left unimported" in _header(_pytest(root, "-p", "no:randomly", "-k", "test_f1"))
    assert "2 test files left unimported" in _header(_pytest(root, *xdist_run))
    # an edit seen by the xdist key too: the edited file is imported and recorded again by gw0
    (root / "test_m2.py").write_text("def test_f2(): pass\ndef test_f1_too(): pass\n")
    edited = _pytest(root, *xdist_run)
    assert "1 test files left unimported" in _header(edited) and "2 passed" in edited.stdout, edited.stdout
    cmp = referee(root, [*BASE, *xdist_run], run=True, timeout=180)
    assert cmp.ok, format_report(cmp)


def test_fast_keyword_names_equal_pytests_own(pytester: pytest.Pytester) -> None:
    """recording.KeywordNames.fast (parent chain cached) gives KeywordMatcher.from_item's set for every item
    shape: classes, nested classes, params, marks on classes and modules, extra keywords, function attributes
    (public, private and pytest's ignored ones)."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        """
        import pytest
        from pytest_fastcollect.recording import KeywordNames

        def pytest_collection_modifyitems(items):
            items[0].extra_keyword_matches.add("added_by_hook")
            items[0].parent.extra_keyword_matches.add("added_to_parent")

        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(session):
            names = KeywordNames()
            for item in session.items:
                marks = [(m.name, m.kwargs) for m in item.iter_markers()]
                assert names.fast(item, marks) == names.exact(item), item.nodeid
            print("CHECKED", len(session.items))
        """
    )
    pytester.makepyfile(
        test_shapes="""
        import pytest
        pytestmark = pytest.mark.modmark

        def test_attrs(): pass
        test_attrs.public_attr = 1
        test_attrs._private = 2

        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.slow, id="two")])
        def test_params(x): pass

        @pytest.mark.cls
        class TestOuter:
            def test_m(self): pass

            class TestInner:
                @pytest.mark.inner(k=1)
                def test_deep(self): pass
        """
    )
    pytester.mkpydir("pkg").joinpath("test_in_pkg.py").write_text("def test_p(): pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-s", "-p", "no:fastcollect")
    result.stdout.fnmatch_lines(["CHECKED 6"])
    assert result.ret == 0


def test_key_does_not_depend_on_how_the_interpreter_was_spelled(monkeypatch) -> None:
    from pytest_fastcollect.environment import key_material

    here = os.path.dirname(sys.executable)
    monkeypatch.setattr(sys, "executable", os.path.join(here, "..", os.path.basename(here), os.path.basename(sys.executable)))
    assert key_material("/r", [])["executable"] == os.path.join(here, os.path.basename(sys.executable))


def test_a_test_module_with_pytest_plugins_is_always_imported(pytester: pytest.Pytester) -> None:
    """`pytest_plugins` in a test module registers a plugin when pytest imports it; the plugin's hooks then
    apply to the whole session (here: a terminal summary line), so that file is never left unimported."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        myplug="def pytest_terminal_summary(terminalreporter):\n    terminalreporter.write_line('MYPLUG ACTIVE')\n",
        test_a="pytest_plugins = ['myplug']\ndef test_a(): pass\n",
        test_b="def test_b(): pass\n",
    )
    root = pytester.path
    _pytest(root, "-q")
    proc = _pytest(root, "-k", "nothing_here")
    assert "1 test files left unimported" in _header(proc)  # test_b.py is; test_a.py is imported
    assert "MYPLUG ACTIVE" in proc.stdout
    cmp = referee(root, [*BASE, "-k", "nothing_here"], run=True, timeout=120)
    assert cmp.ok, format_report(cmp)


def test_import_side_effects_across_test_modules_are_detected_and_heal(pytester: pytest.Pytester) -> None:
    """DESIGN.md's documented exception, made visible: test_b.py parametrizes over a registry that importing
    test_a.py fills. Leaving test_a.py unimported changes test_b.py's items; the run says so in its summary
    and drops every record, and the next run (everything imported) is at parity again."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        registry="KINDS = ['base']\n",
        test_a="import registry\nregistry.KINDS.append('extra')\ndef test_a(): pass\n",
        test_b="import pytest, registry\n@pytest.mark.parametrize('kind', registry.KINDS)\ndef test_b(kind): pass\n",
    )
    root = pytester.path
    assert "3 passed" in _pytest(root, "-q").stdout
    drifted = _pytest(root, "-k", "test_b")
    assert "1 test files left unimported" in _header(drifted)
    assert "collected other tests than recorded" in drifted.stdout
    for _ in range(2):  # and it stays so: the project is known to need every file imported
        healed = referee(root, [*BASE, "-k", "test_b"], run=True, timeout=120)
        assert healed.ok, format_report(healed)
        assert healed.plugin.record["fastcollect"]["skipped_files"] == 0
    assert "every test file imported (importing some test modules changes" in _header(_pytest(root, "-k", "test_b"))


def test_node_id_arguments_neither_record_nor_skip(pytester: pytest.Pytester) -> None:
    """`file.py::test` collects that file in part: no record from it, and no file is left unimported (a
    named file's deselected count must stay pytest's)."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_a="def test_a1(): pass\ndef test_a2(): pass\n", test_b="def test_b(): pass\n")
    root = pytester.path
    _pytest(root, "test_a.py::test_a1", "-q")
    first = _pytest(root, "-k", "test_b")
    assert "every test file imported" not in _header(first) and "2 not recorded yet" in _header(first)
    named = _pytest(root, "test_a.py::test_a1", "test_b.py", "-k", "test_a2")
    assert "every test file imported (node IDs on the command line)" in _header(named)
    for args in (["test_a.py::test_a1", "test_b.py", "-k", "test_a2"], ["-k", "test_b"]):
        cmp = referee(root, [*BASE, *args], run=True, timeout=120)
        assert cmp.ok, format_report(cmp)
