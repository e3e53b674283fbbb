import pytest

from helpers import FLAVOUR


@pytest.mark.net
def test_flow_end_to_end():
    pass


@pytest.mark.skipif(FLAVOUR != "vanilla", reason="flavour from the environment")
def test_flow_flavoured():
    pass


def test_database_flow():
    pass
