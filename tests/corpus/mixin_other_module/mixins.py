"""Helper module: its filename does not match python_files, so it is never
collected on its own. Its test_ methods show up only through subclasses."""


class Checks:
    expected = 1

    def value(self):
        return 1

    def test_value_matches(self):
        assert self.value() == self.expected

    def test_value_positive(self):
        assert self.value() > 0
