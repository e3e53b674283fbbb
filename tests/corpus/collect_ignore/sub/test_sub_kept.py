def test_sub_kept():
    assert True
