def test_root():
    assert True
