def test_ignored():
    raise AssertionError("listed in collect_ignore")
