import helpers
from pkg import util


def test_b():
    assert helpers.slowish and util.VALUE == 1
