import sys

import pytest


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture setup fails")


def test_pass():
    assert 1 + 1 == 2


def test_fail():
    assert 1 + 1 == 3


def test_error_in_fixture(broken_fixture):
    raise AssertionError("never reached")


@pytest.mark.skip(reason="unconditional skip")
def test_skip_mark():
    raise AssertionError("never runs")


@pytest.mark.skipif(sys.version_info >= (3,), reason="always true on Python 3")
def test_skipif_mark():
    raise AssertionError("never runs")


def test_skip_imperative():
    pytest.skip("skipped at runtime")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="non-strict: passing makes it XPASS", strict=False)
def test_xpass():
    assert True


def test_xfail_imperative():
    pytest.xfail("xfailed at runtime")


def test_capsys(capsys):
    print("hello out")
    print("hello err", file=sys.stderr)
    captured = capsys.readouterr()
    assert captured.out == "hello out\n"
    assert captured.err == "hello err\n"


def test_tmp_path(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("payload", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "payload"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
