import pytest
from .helpers import value as v

pytestmark = [pytest.mark.slow]
slow = pytest.mark.slow


@pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.xfail)])
def test_one(x):
    assert x


class TestThing(Base):
    __test__ = True

    @slow
    async def test_method(self):
        pass
