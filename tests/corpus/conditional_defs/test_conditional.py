import contextlib
import sys

if sys.version_info >= (3, 0):

    def test_py3_branch():
        assert sys.version_info[0] >= 3

else:

    def test_py2_branch():
        raise AssertionError("never defined on Python 3")


if False:

    def test_if_false():
        raise AssertionError("never defined")


if sys.platform == "no-such-platform":

    def test_impossible_platform():
        raise AssertionError("never defined")


try:
    import fastcollect_corpus_module_that_does_not_exist  # noqa: F401

    def test_with_missing_module():
        raise AssertionError("never defined: the import above fails")

except ImportError:

    def test_without_missing_module():
        assert "fastcollect_corpus_module_that_does_not_exist" not in sys.modules


with contextlib.suppress(ZeroDivisionError):

    def test_inside_suppress():
        assert True

    1 / 0

    def test_after_suppressed_error():
        raise AssertionError("never defined: 1/0 above leaves the with block")


def _factory(i):
    def generated():
        assert i in (0, 1, 2)

    return generated


for _i in range(3):
    globals()[f"test_gen_{_i}"] = _factory(_i)


def test_redefined():
    raise AssertionError("replaced by the second definition below")


def test_deleted():
    raise AssertionError("deleted below")


del test_deleted

exec("def test_from_exec():\n    assert True\n")


def test_redefined():  # noqa: F811  (keeps the first definition's position)
    assert True
