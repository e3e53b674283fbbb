import unittest


def check_addition():
    assert 1 + 1 == 2


def it_subtracts():
    assert 2 - 1 == 1


def test_not_matching_python_functions():
    raise AssertionError("test_* does not match python_functions here")


class MathSuite:
    def check_in_suite(self):
        assert True

    def it_works_in_suite(self):
        assert True

    def test_not_collected(self):
        raise AssertionError("never collected")


class DescribeCalculator:
    def it_describes(self):
        assert True


class TestNotMatching:
    def check_never(self):
        raise AssertionError("TestNotMatching matches neither *Suite nor Describe*")


class Legacy(unittest.TestCase):
    """TestCase subclasses ignore python_classes/python_functions: unittest's
    loader picks test* methods."""

    def test_legacy(self):
        self.assertTrue(True)

    def check_legacy(self):
        raise AssertionError("unittest loader only collects test* methods")
