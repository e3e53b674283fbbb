import pytest


@pytest.mark.parametrize("x", [1, 2, 3], ids=["one", "two", "three"])
def test_explicit_ids(x):
    assert x in (1, 2, 3)


@pytest.mark.parametrize(
    "x",
    [
        pytest.param(1, id="p-one"),
        pytest.param(2, id="p-two-skipped", marks=pytest.mark.skip(reason="param skip")),
        pytest.param(3),
        pytest.param(4, id="p-four-xfail", marks=pytest.mark.xfail(reason="expected", strict=True)),
    ],
)
def test_pytest_param(x):
    assert x != 4


def _idfn(value):
    return f"val{value * 10}"


@pytest.mark.parametrize("x", [1, 2], ids=_idfn)
def test_ids_callable(x):
    assert x in (1, 2)


@pytest.mark.parametrize("a", [1, 2])
@pytest.mark.parametrize("b", ["x", "y"])
def test_stacked(a, b):
    assert a and b


@pytest.mark.parametrize("a,b", [(1, 2), (3, 4)])
def test_tuple_argnames(a, b):
    assert b == a + 1


@pytest.mark.parametrize("s", ["same", "same", "a b/c::d", "caf\u00e9", None, 1.5, b"by"])
def test_tricky_ids(s):
    # duplicate ids get suffixes; non-ASCII is escaped; None/bytes/floats
    assert s is None or s or s == 0


@pytest.mark.parametrize("x", [])
def test_empty_parameter_set(x):
    raise AssertionError("empty parameter set: skipped")


@pytest.mark.parametrize("n", [1, 2], ids=["n1", "n2"])
class TestParametrizedClass:
    def test_first(self, n):
        assert n in (1, 2)

    @pytest.mark.parametrize("m", [0])
    def test_with_method_param(self, n, m):
        assert n + m in (1, 2)


@pytest.fixture(params=[1, 2, 3], ids=["low", "mid", "high"])
def level(request):
    return request.param * 100


def test_fixture_params(level):
    assert level in (100, 200, 300)


@pytest.fixture
def doubled(request):
    return request.param * 2


@pytest.mark.parametrize("doubled", [5, 6], indirect=True, ids=["five", "six"])
def test_indirect(doubled):
    assert doubled in (10, 12)


@pytest.mark.parametrize("level", [7], indirect=True)
def test_indirect_overrides_fixture_params(level):
    assert level == 700
