def test_sub_not_ignored():
    # collect_ignore entries are relative to the conftest directory, so
    # sub/test_ignored.py is NOT ignored.
    assert True
