import pytest

from helpers import SIZES


def test_alpha_one():
    pass


@pytest.mark.slow
def test_alpha_slow():
    pass


@pytest.mark.parametrize("size", SIZES)
def test_alpha_sizes(size):
    assert size > 0


class TestAlphaGroup:
    def test_member(self):
        pass

    def test_database_write(self):
        pass
