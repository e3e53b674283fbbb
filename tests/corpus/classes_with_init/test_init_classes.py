import dataclasses


class TestWithInit:
    def __init__(self):
        self.value = 1

    def test_never_collected(self):
        raise AssertionError("class has __init__: not collected")


class TestWithNew:
    def __new__(cls):
        return super().__new__(cls)

    def test_never_collected(self):
        raise AssertionError("class has __new__: not collected")


class _BaseWithInit:
    def __init__(self):
        self.value = 1


class TestInheritedInit(_BaseWithInit):
    def test_never_collected(self):
        raise AssertionError("inherited __init__: not collected")


@dataclasses.dataclass
class TestDataclass:
    value: int = 0

    def test_never_collected(self):
        raise AssertionError("dataclass generates __init__: not collected")


class TestNormal:
    def test_collected(self):
        assert True

    def test_also_collected(self):
        assert True
