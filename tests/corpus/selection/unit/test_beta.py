import pytest

pytestmark = pytest.mark.owner(name="bob")


def test_beta_one():
    pass


@pytest.mark.owner(name="alice")
def test_beta_alice():
    pass


@pytest.mark.parametrize("word", [pytest.param("x", id="ex"), pytest.param("y", id="why", marks=pytest.mark.slow)])
def test_beta_words(word):
    assert word
