def test_same_in_b():
    assert __name__ == "pkg_b.test_same"


class TestSameB:
    def test_method(self):
        assert True
