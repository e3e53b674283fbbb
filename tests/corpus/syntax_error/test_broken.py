def test_before_the_error():
    assert True


def test_broken(:
    assert True
