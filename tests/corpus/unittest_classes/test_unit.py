import unittest
from unittest import TestCase as TC


class Arithmetic(unittest.TestCase):
    def setUp(self):
        self.base = 2

    def test_add(self):
        self.assertEqual(self.base + 2, 4)

    def test_mul(self):
        self.assertEqual(self.base * 3, 6)

    @unittest.skip("method-level skip")
    def test_skipped_method(self):
        raise AssertionError("never runs")

    def helper_not_a_test(self):
        raise AssertionError("never collected")


@unittest.skip("whole class skipped")
class SkippedCase(unittest.TestCase):
    def test_never_runs(self):
        raise AssertionError("never runs")


class MoreArithmetic(Arithmetic):
    """Inherits test_add/test_mul/test_skipped_method from Arithmetic."""

    def test_sub(self):
        self.assertEqual(self.base - 2, 0)


class AliasedBase(TC):
    """TestCase reached through an import alias."""

    def test_alias_base(self):
        self.assertTrue(True)


class OnlyRunTest(unittest.TestCase):
    """No test* methods: pytest falls back to collecting runTest."""

    def runTest(self):
        self.assertEqual(1, 1)


class PlainHelper:
    """Not a TestCase and no Test prefix: its test_ methods are not collected."""

    def test_not_collected(self):
        raise AssertionError("never collected")
