import functools


class TestMethodKinds:
    @staticmethod
    def test_static():
        assert True

    @classmethod
    def test_classmethod(cls):
        assert cls.__name__ == "TestMethodKinds"

    def test_regular(self):
        assert True


class SomeCallable:
    def __call__(self):
        raise AssertionError("callable instances are not collected")


test_callable = SomeCallable()

test_lambda = lambda: None  # noqa: E731


def _takes_arg(value):
    assert value == 42


test_partial = functools.partial(_takes_arg, 42)


def _wrapped():
    assert True


@functools.wraps(_wrapped)
def test_wraps_decorated():
    assert True
