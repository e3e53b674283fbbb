import pytest


def pytest_generate_tests(metafunc):
    # Module-level hook: runs in addition to the conftest hook.
    if "letter" in metafunc.fixturenames:
        metafunc.parametrize("letter", ["a", "b"], ids=lambda v: f"letter_{v}")


def test_number(number):
    assert number in (1, 2, 3)


def test_letter(letter):
    assert letter in ("a", "b")


def test_both(number, letter):
    assert number and letter


@pytest.mark.scenarios("login", "logout")
def test_scenario(scenario):
    assert scenario in ("login", "logout")


def test_plain():
    assert True


class TestClassHook:
    def pytest_generate_tests(self, metafunc):
        # Class-level hook: applies to this class's methods only.
        if "size" in metafunc.fixturenames:
            metafunc.parametrize("size", [10, 20])

    def test_size(self, size):
        assert size in (10, 20)

    def test_size_and_number(self, size, number):
        assert size and number
