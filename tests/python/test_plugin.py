"""End-to-end behaviour of the plugin's first version: header, off switches, failure isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_fastcollect import __version__

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(
        test_one="def test_a(): pass\nclass TestB:\n    def test_b(self): pass\n",
        test_two="async def test_c(): pass\n",
        helper="def test_not_collected_here(): pass\n",
    )
    pytester.mkpydir("sub").joinpath("test_three.py").write_text("def test_d(): pass\n")
    return pytester


def test_header_reports_scan(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only")
    result.stdout.re_match_lines([rf"fastcollect {__version__}: scanned 3 files \(0 from cache, 3 parsed\), 4 test definitions, in [0-9.]+ ms .*"])
    assert result.ret == 0


def test_off_by_flag(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "--no-fastcollect")
    result.stdout.no_fnmatch_line("fastcollect*scanned*")
    result.stdout.fnmatch_lines(["*4 tests collected*"])


def test_off_by_ini(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nfastcollect = false\n")
    result = project.runpytest_subprocess("--collect-only")
    result.stdout.no_fnmatch_line("fastcollect*scanned*")


def test_disabled_with_p_no(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "-p", "no:fastcollect")
    result.stdout.no_fnmatch_line("*fastcollect*")
    assert result.ret == 0


def test_only_argument_paths_are_walked(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "sub")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 1 files (*), 1 test definitions*"])


def test_core_failure_is_one_line_and_run_goes_on(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_fastcollect import _core

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated core failure")

    monkeypatch.setattr(_core, "walk", broken)
    result = project.runpytest_inprocess("-v")
    result.stdout.fnmatch_lines(
        ["fastcollect*: scan failed (RuntimeError: simulated core failure); running as plain pytest"]
    )
    # the async test fails or skips depending on the pytest version; the three sync tests pass
    assert result.parseoutcomes()["passed"] == 3


def test_ignore_and_norecursedirs_follow_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnorecursedirs = skipme\n")
    pytester.mkdir("skipme").joinpath("test_x.py").write_text("def test_x(): pass\n")
    pytester.mkdir("build").joinpath("test_y.py").write_text("def test_y(): pass\n")  # not skipped: ini replaces
    pytester.mkdir("other").joinpath("test_z.py").write_text("def test_z(): pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "--ignore=other")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 1 files (*), 1 test definitions*", "*test_y*"])
    result.stdout.no_fnmatch_line("*test_x*")


def test_pyargs_resolves_module_paths(pytester: pytest.Pytester) -> None:
    pkg = pytester.mkpydir("mypkg")
    pkg.joinpath("test_mod.py").write_text("def test_m(): pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "--pyargs", "mypkg", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 1 files (*), 1 test definitions*", "*test_m*"])


def test_xdist_worker_without_a_handoff_never_writes_a_cache(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")  # a worker, but no controller gave it a cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    result = project.runpytest_subprocess("--collect-only")
    result.stdout.fnmatch_lines(["fastcollect*: scanned * files (no cache)*"])
    assert not (project.path / ".pytest_cache" / "d" / "fastcollect").exists()
    assert not (tmp_path / "xdg").exists()


def test_pyargs_dotted_name_imports_nothing_before_pytest_does(pytester: pytest.Pytester) -> None:
    # the package may only be imported after the conftest ran, as plain pytest does it
    pytester.makeconftest("import os\nos.environ['FC_CONFTEST_LOADED'] = '1'\n")
    pkg = pytester.mkpydir("mypkg")
    pkg.joinpath("__init__.py").write_text("import os\nassert os.environ.get('FC_CONFTEST_LOADED'), 'too early'\n")
    sub = pkg / "sub"
    sub.mkdir()
    sub.joinpath("__init__.py").write_text("")
    sub.joinpath("test_deep.py").write_text("def test_deep(): pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "--pyargs", "mypkg.sub")
    result.stdout.fnmatch_lines(["fastcollect*: scanned 1 files (*), 1 test definitions*", "*test_deep*"])
    assert result.ret == 0


def test_help_and_version_do_not_scan(project: pytest.Pytester) -> None:
    assert project.runpytest_subprocess("--help").ret == 0
    assert project.runpytest_subprocess("--version").ret == 0
    assert not (project.path / ".pytest_cache" / "d" / "fastcollect").exists()
    project.runpytest_subprocess("--collect-only")
    assert (project.path / ".pytest_cache" / "d" / "fastcollect").exists()


@pytest.fixture
def big_project(pytester: pytest.Pytester) -> pytest.Pytester:
    # enough files that the background scan is still running when pytest gives up early
    for d in range(15):
        folder = pytester.mkdir(f"pkg{d}")
        for i in range(100):
            folder.joinpath(f"test_p{d}_{i}.py").write_text("".join(f"def test_{j}(): pass\n" for j in range(20)))
    return pytester


@pytest.mark.parametrize(
    "conftest, args, expected",
    [
        ("", ["--no-such-option"], 4),
        ("import pytest\npytest.exit('bye', returncode=3)\n", [], 4),  # pytest reports it as a conftest error
        ("raise ImportError('broken conftest')\n", [], 4),
    ],
    ids=["usage-error", "pytest-exit-in-conftest", "conftest-import-error"],
)
def test_early_exit_keeps_pytests_exit_code(big_project: pytest.Pytester, conftest: str, args: list[str],
                                            expected: int) -> None:
    if conftest:
        big_project.makeconftest(conftest)
    for _ in range(3):
        plain = big_project.runpytest_subprocess("-p", "no:fastcollect", "--fastcollect-cache-clear", *args)
        ours = big_project.runpytest_subprocess("--fastcollect-cache-clear", *args)
        assert ours.ret == plain.ret == expected, ours.stderr.str()
        assert "terminate called" not in ours.stderr.str()
