import pytest


def test_pkg_one():
    pass


@pytest.mark.slow
class TestPkgSlow:
    def test_pkg_slow(self):
        pass
