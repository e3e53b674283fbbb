import pytest

from marks import owned_by_alice, slow

pytestmark = [pytest.mark.smoke]


def _mark_names(request):
    return sorted({m.name for m in request.node.iter_markers()})


@slow
def test_slow_via_alias():
    raise AssertionError("marked slow through an imported alias: deselected")


@owned_by_alice
def test_owner_alias(request):
    assert request.node.get_closest_marker("owner").kwargs == {"name": "alice"}
    assert _mark_names(request) == ["owner", "smoke"]


@pytest.mark.timeout_like(seconds=3, method="thread")
def test_marker_kwargs(request):
    marker = request.node.get_closest_marker("timeout_like")
    assert marker.kwargs == {"seconds": 3, "method": "thread"}


def test_db_by_name(request):
    # conftest adds the db marker because "db" is in the name.
    assert _mark_names(request) == ["db", "smoke"]


def test_plain(request):
    assert _mark_names(request) == ["smoke"]


class TestApi:
    pytestmark = pytest.mark.api

    def test_in_class(self, request):
        assert _mark_names(request) == ["api", "smoke"]

    @slow
    def test_slow_in_class(self):
        raise AssertionError("deselected")

    @pytest.mark.parametrize("n", [1, pytest.param(2, marks=slow)])
    def test_param_marks(self, n):
        assert n == 1


def test_sqldb_and_slow_via_alias_assignment():
    raise AssertionError("marked slow below: deselected")


test_sqldb_and_slow_via_alias_assignment = slow(test_sqldb_and_slow_via_alias_assignment)
