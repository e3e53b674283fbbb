__test__ = False


def test_would_fail():
    raise AssertionError("module has __test__ = False: never collected")


class TestWouldFail:
    def test_method(self):
        raise AssertionError("never collected")
