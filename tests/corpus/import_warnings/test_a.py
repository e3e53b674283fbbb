import warnings

from helpers import slowish

warnings.warn("test_a module warning", UserWarning)


@slowish
def test_a():
    pass
