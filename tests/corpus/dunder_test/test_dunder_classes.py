class TestNotReally:
    __test__ = False

    def test_hidden(self):
        raise AssertionError("class has __test__ = False: never collected")


class TestInheritsDisabled(TestNotReally):
    """Inherits __test__ = False: not collected either."""

    def test_also_hidden(self):
        raise AssertionError("never collected")


class TestReEnabled(TestNotReally):
    """Overrides the inherited __test__ = False: collected, including the
    inherited test_hidden (which is overridden here to pass)."""

    __test__ = True

    def test_hidden(self):
        assert True


class Checker:
    """No Test prefix, but __test__ = True makes pytest collect it."""

    __test__ = True

    def test_checker_method(self):
        assert True

    def check_not_test_named(self):
        raise AssertionError("method name does not match python_functions")


def test_disabled_after_definition():
    raise AssertionError("fn.__test__ = False below: never collected")


test_disabled_after_definition.__test__ = False


def verify_enabled_after_definition():
    assert True


verify_enabled_after_definition.__test__ = True


def test_plain():
    assert True
