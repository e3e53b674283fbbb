class TestOuter:
    def test_outer(self):
        assert True

    class TestInner:
        def test_inner(self):
            assert True

        class TestDeepest:
            def test_deepest(self):
                assert True

        def test_inner_after_deepest(self):
            assert True

    class Helper:
        def test_not_collected(self):
            raise AssertionError("Helper does not match python_classes")

        class TestUnderHelper:
            def test_not_collected_either(self):
                raise AssertionError("parent class is not collected")

    def test_outer_last(self):
        assert True


def test_module_level():
    assert True
