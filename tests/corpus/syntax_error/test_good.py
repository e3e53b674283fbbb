def test_good_one():
    assert True


def test_good_two():
    assert True
