"""Not test-shaped (ends in _tests.py, not _test.py): never collected itself."""


def test_helper_one():
    assert True


def plain_function():
    # Not test-named here; collected only where it is imported as test_*.
    assert True


class TestImported:
    def test_method(self):
        assert True
