from pkg.util import VALUE


def test_value():
    assert VALUE == 1
