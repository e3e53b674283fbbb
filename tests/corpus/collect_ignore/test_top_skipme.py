def test_top_skipme():
    raise AssertionError("matches collect_ignore_glob")
