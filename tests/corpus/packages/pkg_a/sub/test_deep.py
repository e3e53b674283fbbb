from ..test_same import test_same_in_a as _reused  # relative import inside a package


def test_deep():
    assert __name__ == "pkg_a.sub.test_deep"
    assert _reused.__module__ == "pkg_a.test_same"
